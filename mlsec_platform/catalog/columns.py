"""Shorthands the catalog declarations are written with: Arrow types, sensitivities, column
constructors, and the columns several datasets share (the person token, the state, ...)."""

from __future__ import annotations

import pyarrow as pa

from mlsec_platform.catalog.governance import (
    ColumnSpec,
    Generalisation,
    Mask,
    PiiKind,
    Purpose,
    Sensitivity,
)

S, I32, I64, F64 = pa.string(), pa.int32(), pa.int64(), pa.float64()
MONEY = pa.decimal128(14, 2)
TS = pa.timestamp("us", tz="UTC")
DATE = pa.date32()
P, IN, CONF, RESTR = (
    Sensitivity.PUBLIC,
    Sensitivity.INTERNAL,
    Sensitivity.CONFIDENTIAL,
    Sensitivity.RESTRICTED,
)
ALL_PURPOSES = frozenset(Purpose)
BUSINESS = frozenset({Purpose.ANALYTICS, Purpose.OPERATIONS, Purpose.ML, Purpose.MARKETING})


def col(name: str, type_: pa.DataType, description: str, **kwargs) -> ColumnSpec:
    return ColumnSpec(name, type_, description, **kwargs)


def key(name: str, description: str, type_: pa.DataType = S, **kwargs) -> ColumnSpec:
    return ColumnSpec(name, type_, description, nullable=False, **kwargs)


def token(name: str, of: str, *, from_column: str, domain: str, **kwargs) -> ColumnSpec:
    """Tokens of the clear ``from_column`` (a direct identifier) in tokenization ``domain``."""
    return ColumnSpec(
        name,
        S,
        f"Token of the {of} (random, one per value in its domain; reveal needs `reveal`).",
        pii=PiiKind.DIRECT,
        sensitivity=kwargs.pop("sensitivity", RESTR),
        mask=kwargs.pop("mask", Mask.REDACT),
        tokenized=True,
        from_column=from_column,
        token_domain=domain,
        **kwargs,
    )


#: The tokenization domain of people (customers): the same person has the same token in every
#: table of it, and only tokens of one domain join.
PEOPLE = "customers"


RAW_BATCH = col("_raw_batch_id", S, "The Raw batch this row came from (lineage).", nullable=False)
CUSTOMER_TOKEN = token(
    "customer_token",
    "person (customer_unique_id)",
    from_column="customer_unique_id",
    domain=PEOPLE,
    sensitivity=CONF,
    mask=Mask.KEYED_HASH,
    nullable=False,
)
STATE = col(
    "customer_state",
    S,
    "Customer's federative unit (UF); the row-security key.",
    pii=PiiKind.QUASI,
    mask=Mask.REDACT,
    nullable=False,
)

ZIP3 = col(
    "customer_zip3",
    S,
    "First 3 digits of the zip code prefix.",
    pii=PiiKind.QUASI,
    mask=Mask.REDACT,
    generalised=Generalisation.ZIP3,
    from_column="customer_zip_code_prefix",
)
CITY = col("customer_city", S, "City.", pii=PiiKind.QUASI, mask=Mask.REDACT)
