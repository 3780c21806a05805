"""Pandera schemas of every Silver, Gold and feature table, generated from the catalog.

Types are the catalog's Arrow types (a batch is cast to them before it is validated, so a
value that does not fit fails there). Pandera checks the rest on the batch: nullability, key
uniqueness and token shapes from the catalog, plus the value rules below where a dataset has
them (a dataset without an entry in ``RULES`` is checked on its catalog alone). Some rules need
reference data known only at run time: the Silver tables a transform joins come in as
``params`` by name (e.g. ``product_categories``).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

with warnings.catch_warnings():
    # pandera registers its PySpark backend when pyspark is installed, and PySpark warns about
    # pandas 3; the gates validate pandas frames only.
    warnings.filterwarnings("ignore", "PySpark does not yet fully support", FutureWarning)
    import pandera.pandas as pa_

from mlsec_platform.catalog.datasets import CATALOG, ORDER_STATUSES
from mlsec_platform.catalog.governance import TOKEN_PATTERN, DatasetSpec

#: The 27 federative units (as in silver/br_states).
UFS = (
    "AC",
    "AL",
    "AM",
    "AP",
    "BA",
    "CE",
    "DF",
    "ES",
    "GO",
    "MA",
    "MG",
    "MS",
    "MT",
    "PA",
    "PB",
    "PE",
    "PI",
    "PR",
    "RJ",
    "RN",
    "RO",
    "RR",
    "RS",
    "SC",
    "SE",
    "SP",
    "TO",
    "",
)
PAYMENT_TYPES = ("credit_card", "boleto", "voucher", "debit_card", "not_defined")
EVENT_TYPES = ("created", "approved", "shipped", "delivered", "canceled")

TOKEN_SHAPE = f"^{TOKEN_PATTERN.pattern}$"  # noqa: S105 - a pattern

C = pa_.Check
Rules = dict[str, list[pa_.Check]]


def _non_negative(*columns: str) -> Rules:
    return {c: [C.ge(0)] for c in columns}


def _share(*columns: str) -> Rules:
    return {c: [C.in_range(0, 1)] for c in columns}


def _catalog_only(params: dict[str, Any]) -> Rules:
    return {}


def _tokens(spec: DatasetSpec) -> Rules:
    """Tokenized columns must hold tokens: a clear value there fails the gate."""
    return {c.name: [C.str_matches(TOKEN_SHAPE)] for c in spec.columns if c.tokenized}


def _states(*columns: str) -> Rules:
    return {c: [C.isin(UFS)] for c in columns}


#: Name prefix of the checks against another table (the ``references`` family).
REFERENCE_CHECK = "references"


def _categories(params: dict[str, Any]) -> Rules:
    """Product categories must be known to the translation table (the asset's input)."""
    known = params["product_categories"].column("category").to_pylist()
    return {"category": [C.isin(sorted(known), error=f"{REFERENCE_CHECK}(product_categories)")]}


#: Value rules per dataset, beyond types, nullability, keys and tokens.
RULES: dict[str, Callable[[dict[str, Any]], Rules]] = {
    "silver/customers": lambda p: (
        _states("customer_state") | {"customer_zip3": [C.str_matches(r"^\d{3}$")]}
    ),
    "silver/orders": lambda p: {"order_status": [C.isin(ORDER_STATUSES)]},
    "silver/order_items": lambda p: (
        _non_negative("price", "freight_value") | {"order_item_id": [C.ge(1)]}
    ),
    "silver/order_payments": lambda p: (
        _non_negative("payment_value", "payment_installments")
        | {"payment_type": [C.isin(PAYMENT_TYPES)]}
    ),
    "silver/order_reviews": lambda p: {"review_score": [C.in_range(1, 5)]},
    "silver/products": _categories,
    "silver/sellers": lambda p: _states("seller_state"),
    "silver/product_categories": lambda p: {},
    "silver/geolocation": lambda p: {"lat": [C.in_range(-90, 90)], "lng": [C.in_range(-180, 180)]},
    "silver/order_events": lambda p: {
        "event_type": [C.isin(EVENT_TYPES)],
        "status": [C.isin(ORDER_STATUSES)],
    },
    "gold/dim_customer": lambda p: _states("customer_state") | {"orders": [C.ge(1)]},
    "gold/dim_product": lambda p: _non_negative("weight_g", "volume_cm3"),
    "gold/dim_seller": lambda p: _states("seller_state"),
    "gold/dim_date": lambda p: {"month": [C.in_range(1, 12)], "iso_weekday": [C.in_range(1, 7)]},
    "gold/fact_order_item": lambda p: (
        _non_negative("price", "freight_value", "item_total")
        | _states("customer_state", "seller_state")
        | {"review_score": [C.in_range(1, 5)]}
    ),
    "gold/kpi_sales_monthly": lambda p: _non_negative("orders", "items", "revenue", "freight"),
    "gold/kpi_delivery": lambda p: (
        _share("late_rate") | _non_negative("delivered_orders", "late_orders", "avg_delivery_days")
    ),
    "gold/kpi_review_score": lambda p: (
        _share("share_low", "share_top") | {"avg_score": [C.in_range(1, 5)]}
    ),
    "features/customer_rfm": lambda p: (
        _non_negative("recency_days", "monetary")
        | {"frequency": [C.ge(1)], "avg_review_score": [C.in_range(1, 5)]}
        | _share("late_delivery_rate")
    ),
    "features/customer_order_status": lambda p: (
        _states("customer_state")
        | _non_negative("orders_open", "orders_delivered", "orders_canceled")
        | {"orders": [C.ge(1)], "events": [C.ge(1)], "last_order_status": [C.isin(ORDER_STATUSES)]}
    ),
}

#: Whole-table rules (name, check) per dataset.
TABLE_RULES: dict[str, list[pa_.Check]] = {
    "gold/fact_order_item": [
        C(
            lambda df: (df["item_total"] - df["price"] - df["freight_value"]).abs() < 0.005,
            name="item_total_is_price_plus_freight",
        )
    ],
    "gold/kpi_delivery": [
        C(lambda df: df["late_orders"] <= df["delivered_orders"], name="late_within_delivered")
    ],
    "features/customer_order_status": [
        C(
            lambda df: (
                df["orders_open"] + df["orders_delivered"] + df["orders_canceled"] == df["orders"]
            ),
            name="order_states_add_up",
        )
    ],
}

#: The same whole-table rules as SQL predicates over one row, for the gate on the Spark engine
#: (``quality/engine_gate.py``); a rule above without one fails that gate's definition.
TABLE_RULE_SQL: dict[str, str] = {
    "item_total_is_price_plus_freight": "abs(item_total - price - freight_value) < 0.005",
    "late_within_delivered": "late_orders <= delivered_orders",
    "order_states_add_up": "orders_open + orders_delivered + orders_canceled = orders",
}


#: Name of the key-uniqueness check (followed by the key columns in parentheses).
UNIQUE_KEY_CHECK = "unique_key"


def unique_key_check(key: tuple[str, ...]) -> pa_.Check:
    """No two rows share ``key``.

    Distinct 64-bit hashes of the key prove distinct keys, so DuckDB hashes each row's key
    (on both cores) and NumPy sorts the hashes: ~1 s for 4M UUID keys against ~7 s for a
    GROUP BY on the strings (measured 2026-12 on this 2-core machine). Only when two hashes
    are equal (a duplicate, or a collision) does the exact GROUP BY run, and only when that
    finds duplicates does pandas mark which rows, so the failure cases name them. NULL keys
    hash alike and group alike: both treat two NULL keys as one key."""
    columns = ", ".join('"' + c.replace('"', '""') + '"' for c in key)
    hashes = f"SELECT hash({columns}) AS h FROM batch"
    query = f"SELECT count(*) FROM (SELECT 1 FROM batch GROUP BY {columns} HAVING count(*) > 1)"

    def unique(frame: pd.DataFrame) -> bool | pd.Series:
        with duckdb.connect() as con:
            con.register("batch", frame[list(key)])
            digests = np.sort(con.execute(hashes).fetchnumpy()["h"])
            if not (digests[1:] == digests[:-1]).any():
                return True
            [(groups,)] = con.execute(query).fetchall()
        return True if groups == 0 else ~frame.duplicated(subset=list(key), keep=False)

    return C(unique, name=f"{UNIQUE_KEY_CHECK}({', '.join(key)})")


def schema_for(spec: DatasetSpec, **params: Any) -> pa_.DataFrameSchema:
    """The pandera schema of one catalog dataset."""
    rules = RULES.get(spec.id, _catalog_only)(params) | _tokens(spec)
    unknown = set(rules) - set(spec.column_names)
    if unknown:
        raise KeyError(f"{spec.id}: rules for unknown columns {sorted(unknown)}")
    return pa_.DataFrameSchema(
        {
            c.name: pa_.Column(None, checks=rules.get(c.name, []), nullable=c.nullable)
            for c in spec.columns
        },
        checks=[*TABLE_RULES.get(spec.id, []), *([unique_key_check(spec.key)] if spec.key else [])],
        strict=True,
        ordered=True,
        name=spec.id,
    )


def validation_frame(table: pa.Table) -> pd.DataFrame:
    """The batch as pandas for pandera, on Arrow memory (no copy into NumPy objects): decimals
    as floats (exact to the cent at these sizes)."""
    columns = {}
    for field in table.schema:
        column = table.column(field.name)
        if pa.types.is_decimal(field.type):
            column = column.cast(pa.float64())
        columns[field.name] = column
    return pa.table(columns).to_pandas(types_mapper=pd.ArrowDtype)


if set(RULES) - set(CATALOG):
    raise RuntimeError(f"quality rules for unknown datasets: {sorted(set(RULES) - set(CATALOG))}")
