"""The broker's wire contract: structured requests (never SQL text) and their answers.

Names are checked against the catalog later; here only their shape is: identifiers are plain
lower-case names, so nothing but a catalog name can ever reach the SQL compiler.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

#: A column name as the catalog spells them.
ColumnName = Annotated[str, StringConstraints(pattern=r"^[a-z_][a-z0-9_]{0,62}$")]
#: A dataset id, ``<zone>/<name>``.
DatasetId = Annotated[str, StringConstraints(pattern=r"^[a-z]+/[a-z_][a-z0-9_]{0,62}$")]
#: A filter operand: typed scalars only (strings are bound as parameters, never spliced).
Scalar = str | int | float | bool | Decimal | date | datetime
#: The range of a signed 64-bit integer: Delta versions, the widest integer column.
MIN_INT64, MAX_INT64 = -(2**63), 2**63 - 1


def storable_text(text: str) -> str:
    """``text`` when every store the request reaches can hold it, else ValueError (a 400):
    Postgres refuses NUL in a string, and a lone surrogate is no UTF-8 at all, so neither can
    be bound as a parameter, kept in the audit log, or match any curated value."""
    if "\x00" in text:
        raise ValueError("text must not contain NUL (U+0000)")
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("text must be valid Unicode (it holds a lone surrogate)") from None
    return text


def utc_instant(moment: datetime) -> datetime:
    """``moment`` in UTC, or ValueError (a 400) when that falls outside the years 1-9999
    (``9999-12-31T23:59:59-23:59`` is in the year 10000 in UTC)."""
    try:
        return moment.astimezone(UTC)
    except (OverflowError, ValueError):
        raise ValueError("instant is outside the years 1-9999 once converted to UTC") from None


#: Text a caller sends: bound as a parameter, looked up or stored, so storable everywhere.
Text = Annotated[str, AfterValidator(storable_text)]
#: An instant a caller sends, converted to UTC once, here.
Instant = Annotated[datetime, AfterValidator(utc_instant)]

#: The version of the broker's HTTP API (its OpenAPI document).
VERSION = "1.0.0"
MAX_PAGE_ROWS = 10_000
MAX_FILTERS = 32
MAX_IN_VALUES = 1_000


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Op(StrEnum):
    EQ = "eq"
    NE = "ne"
    LT = "lt"
    LTE = "lte"
    GT = "gt"
    GTE = "gte"
    IN = "in"
    BETWEEN = "between"
    IS_NULL = "is_null"
    PREFIX = "prefix"


class Filter(Strict):
    column: ColumnName
    op: Op
    #: eq/ne/lt/lte/gt/gte/prefix: one scalar; in: a list; between: [low, high];
    #: is_null: true (IS NULL) or false (IS NOT NULL).
    value: Scalar | list[Scalar] | None = None

    @field_validator("value", mode="before")
    @classmethod
    def _operands_fit_the_stores(cls, value: Any) -> Any:
        """Text storable everywhere, integers within 64 bits (the widest integer column; the
        audit fingerprint and the cursor hold no more). Checked before the union picks a
        type, so the refusal names the value, not one of the union's members."""
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, str):
                storable_text(item)
            elif type(item) is int and not MIN_INT64 <= item <= MAX_INT64:
                raise ValueError("an integer operand must fit in 64 bits (signed)")
        return value

    @model_validator(mode="after")
    def _operand_fits(self) -> Filter:
        v = self.value
        if self.op is Op.IN:
            if not isinstance(v, list) or not 1 <= len(v) <= MAX_IN_VALUES:
                raise ValueError(f"'in' takes a list of 1 to {MAX_IN_VALUES} values")
        elif self.op is Op.BETWEEN:
            if not isinstance(v, list) or len(v) != 2:
                raise ValueError("'between' takes [low, high]")
        elif self.op is Op.IS_NULL:
            if not isinstance(v, bool):
                raise ValueError("'is_null' takes true or false")
        elif self.op is Op.PREFIX:
            if not isinstance(v, str) or not v:
                raise ValueError("'prefix' takes a non-empty string")
        elif v is None or isinstance(v, list):
            raise ValueError(f"{self.op.value!r} takes one value")
        return self


class Direction(StrEnum):
    ASC = "asc"
    DESC = "desc"


class OrderBy(Strict):
    column: ColumnName
    direction: Direction = Direction.ASC


class RevealRequest(Strict):
    """Ask for tokenized columns in clear: needs the ``reveal`` entitlement; audited high."""

    columns: list[ColumnName] = Field(min_length=1, max_length=8)
    reason: Text = Field(min_length=8, max_length=500)


class QueryRequest(Strict):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "dataset": "gold/fact_order_item",
                    "columns": ["order_id", "order_item_id", "price", "customer_state"],
                    "filters": [
                        {"column": "price", "op": "gt", "value": 20},
                        {"column": "customer_state", "op": "in", "value": ["SP", "RJ"]},
                    ],
                    "order_by": [{"column": "price", "direction": "desc"}],
                    "limit": 100,
                }
            ]
        },
    )

    dataset: DatasetId
    columns: list[ColumnName] = Field(min_length=1, max_length=128)
    filters: list[Filter] = Field(default_factory=list, max_length=MAX_FILTERS)
    order_by: list[OrderBy] = Field(default_factory=list, max_length=8)
    limit: int = Field(default=100, ge=1, le=MAX_PAGE_ROWS)
    #: From a previous page's ``next_cursor``; pins that page's snapshot and query.
    cursor: Text | None = Field(default=None, max_length=4096)
    #: A Delta version to read instead of the latest materialization.
    version: int | None = Field(default=None, ge=0, le=MAX_INT64)
    reveal: RevealRequest | None = None


class HistoricalEntity(Strict):
    customer_token: Text = Field(min_length=1, max_length=512)
    event_timestamp: Instant


class HistoricalRequest(Strict):
    group: ColumnName
    features: list[ColumnName] = Field(min_length=1, max_length=64)
    entities: list[HistoricalEntity] = Field(min_length=1, max_length=MAX_PAGE_ROWS)
    version: int | None = Field(default=None, ge=0, le=MAX_INT64)


class ColumnOut(Strict):
    name: str
    type: str
    #: The mask applied to this column for this reader, if any.
    mask: str | None = None
    revealed: bool = False


class Upstream(Strict):
    asset_key: str
    delta_version: int | None


class Lineage(Strict):
    asset_key: str
    delta_version: int
    run_id: str | None
    materialized_at: datetime | None
    code_version: str | None
    upstream: list[Upstream] = Field(default_factory=list)


class PolicyRef(Strict):
    decision_id: str
    policy_ids: list[str]
    policy_version: str


class QueryResponse(Strict):
    request_id: str
    dataset: str
    columns: list[ColumnOut]
    rows: list[dict[str, Any]]
    row_count: int
    next_cursor: str | None
    lineage: Lineage
    policy: PolicyRef


class Freshness(Strict):
    materialized_at: datetime | None
    age_seconds: float | None


class FeatureVectorResponse(Strict):
    request_id: str
    group: str
    group_version: str
    columns: list[ColumnOut]
    vectors: list[dict[str, Any]]
    missing: list[str]
    freshness: Freshness
    lineage: Lineage
    policy: PolicyRef


class HistoricalResponse(Strict):
    request_id: str
    group: str
    columns: list[ColumnOut]
    rows: list[dict[str, Any]]
    row_count: int
    lineage: Lineage
    policy: PolicyRef


class Explanation(Strict):
    request_id: str
    allowed: bool
    reason: str
    columns: list[ColumnOut]
    row_filter: str | None
    #: The SQL the query compiles to, with placeholders: values never appear in it.
    sql: str | None
    parameters: int
    limits: dict[str, float | int]
    lineage: Lineage | None
    policy: PolicyRef
    #: The disclosure budget the caller's project and purpose read under, and what is left.
    budget: dict[str, Any] | None = None


class DatasetOut(Strict):
    id: str
    zone: str
    domain: str
    description: str
    key: list[str]
    purposes: list[str]
    sensitivity: str
    row_security_key: str | None
    version: int


class ColumnSchemaOut(Strict):
    name: str
    type: str
    description: str
    nullable: bool
    pii: str
    sensitivity: str
    mask: str
    tokenized: bool


class SchemaOut(Strict):
    dataset: DatasetOut
    columns: list[ColumnSchemaOut]


class Problem(Strict):
    """Every refusal: the status, a reason safe to show, and ids to find the audit event."""

    status: int
    reason: str
    request_id: str
    decision_id: str | None = None
