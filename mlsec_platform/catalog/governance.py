"""The catalog's types: governance tags of a column, and a dataset made of such columns.

The declarations are in :mod:`mlsec_platform.catalog.datasets`. The catalog is the single
source of truth for

* the column schema (names, Arrow types, nullability) that Silver/Gold/feature assets write and
  their pandera gates check (:mod:`mlsec_platform.quality.schemas`);
* privacy: which columns are direct identifiers (tokenized), quasi-identifiers (generalised
  where ``generalised`` says how) or neither, and each column's sensitivity;
* access: the purposes a dataset may be read for, the masking rule applied below a column's
  sensitivity and the row-security key the warehouse's RLS and the Access Broker filter on.

Dagster shows all of it (``dagster/column_schema`` with tags per column, tags per asset; the
adapters are in :mod:`mlsec_platform.defs.catalog`), and the broker reads it from here. This
module imports no Dagster and no client: the broker and the gateway read it without them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum, StrEnum

import pyarrow as pa

from mlsec_platform.settings import Zone


class PiiKind(StrEnum):
    DIRECT = "direct_identifier"
    QUASI = "quasi_identifier"
    NONE = "none"


class Sensitivity(IntEnum):
    """Ordered: a reader's clearance must be at least a column's sensitivity to see it clear."""

    PUBLIC = 0
    INTERNAL = 1
    CONFIDENTIAL = 2
    RESTRICTED = 3

    @property
    def label(self) -> str:
        return self.name.lower()


class Mask(StrEnum):
    """What a reader below the column's sensitivity gets instead of the value."""

    NONE = "none"
    REDACT = "redact"
    PARTIAL_EMAIL = "partial_email"
    LAST_DIGITS = "last_digits"
    KEYED_HASH = "keyed_hash"
    NULL = "null"
    ROUND = "round"
    TRUNCATE_DATE = "truncate_date"


class Purpose(StrEnum):
    ANALYTICS = "analytics"
    OPERATIONS = "operations"
    CUSTOMER_SUPPORT = "customer_support"
    FRAUD = "fraud_prevention"
    MARKETING = "marketing"
    ML = "ml_training"


@dataclass(frozen=True)
class ColumnSpec:
    name: str
    type: pa.DataType
    description: str
    pii: PiiKind = PiiKind.NONE
    sensitivity: Sensitivity = Sensitivity.INTERNAL
    mask: Mask = Mask.NONE
    nullable: bool = True
    #: Holds Vault transit tokens of a direct identifier (reveal through Vault only).
    tokenized: bool = False
    #: How a quasi-identifier was generalised from its Raw value (None: kept as is).
    generalised: str | None = None

    def __post_init__(self) -> None:
        if self.pii is PiiKind.DIRECT and not self.tokenized:
            raise ValueError(f"{self.name}: a direct identifier must be stored tokenized")
        if (
            self.sensitivity > Sensitivity.PUBLIC
            and self.mask is Mask.NONE
            and self.pii
            in (
                PiiKind.DIRECT,
                PiiKind.QUASI,
            )
        ):
            raise ValueError(f"{self.name}: personal data needs a masking rule")

    def tags(self) -> dict[str, str]:
        tags = {
            "pii": self.pii.value,
            "sensitivity": self.sensitivity.label,
            "mask": self.mask.value,
        }
        if self.tokenized:
            tags["tokenized"] = "vault-transit"
        if self.generalised:
            tags["generalised"] = self.generalised
        return tags


@dataclass(frozen=True)
class DatasetSpec:
    zone: Zone
    name: str
    domain: str
    description: str
    columns: tuple[ColumnSpec, ...]
    key: tuple[str, ...]
    purposes: frozenset[Purpose]
    row_security_key: str | None = None
    version: int = 1
    tags: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        names = [c.name for c in self.columns]
        if len(set(names)) != len(names):
            raise ValueError(f"{self.id}: duplicate column names")
        for name in (*self.key, *([self.row_security_key] if self.row_security_key else [])):
            if name not in names:
                raise ValueError(f"{self.id}: key column {name!r} is not a column")

    @property
    def id(self) -> str:
        return f"{self.zone.value}/{self.name}"

    @property
    def asset_path(self) -> tuple[str, str]:
        """The Dagster asset key's path: ``(zone, name)``."""
        return (self.zone.value, self.name)

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> ColumnSpec:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"{self.id} has no column {name!r}")

    @property
    def sensitivity(self) -> Sensitivity:
        return max(c.sensitivity for c in self.columns)

    def arrow_schema(self) -> pa.Schema:
        return pa.schema([pa.field(c.name, c.type, nullable=c.nullable) for c in self.columns])

    def conform(self, table: pa.Table, *, nullability: bool = True) -> pa.Table:
        """``table`` with exactly the catalog's columns, in order, cast to the catalog types
        (and nullability, unless ``nullability`` is False: the gate checks it itself)."""
        missing = [n for n in self.column_names if n not in table.column_names]
        extra = [n for n in table.column_names if n not in self.column_names]
        if missing or extra:
            raise ValueError(f"{self.id}: columns differ from the catalog: {missing=} {extra=}")
        schema = self.arrow_schema()
        if not nullability:
            schema = pa.schema([f.with_nullable(True) for f in schema])
        return table.select(self.column_names).cast(schema)

    def asset_tags(self) -> dict[str, str]:
        return {
            "zone": self.zone.value,
            "domain": self.domain,
            "sensitivity": self.sensitivity.label,
            **({"pii": "true"} if any(c.pii is not PiiKind.NONE for c in self.columns) else {}),
            **self.tags,
        }
