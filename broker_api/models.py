"""The broker's wire contract: structured requests (never SQL text) and their answers.

Names are checked against the catalog later; here only their shape is: identifiers are plain
lower-case names, so nothing but a catalog name can ever reach the SQL compiler.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

#: A column name as the catalog spells them.
ColumnName = Annotated[str, StringConstraints(pattern=r"^[a-z_][a-z0-9_]{0,62}$")]
#: A dataset id, ``<zone>/<name>``.
DatasetId = Annotated[str, StringConstraints(pattern=r"^[a-z]+/[a-z_][a-z0-9_]{0,62}$")]
#: A filter operand: typed scalars only (strings are bound as parameters, never spliced).
Scalar = str | int | float | bool | Decimal | date | datetime

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
    reason: str = Field(min_length=8, max_length=500)


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
    cursor: str | None = Field(default=None, max_length=4096)
    #: A Delta version to read instead of the latest materialization.
    version: int | None = Field(default=None, ge=0)
    reveal: RevealRequest | None = None


class HistoricalEntity(Strict):
    customer_token: str = Field(min_length=1, max_length=512)
    event_timestamp: datetime


class HistoricalRequest(Strict):
    group: ColumnName
    features: list[ColumnName] = Field(min_length=1, max_length=64)
    entities: list[HistoricalEntity] = Field(min_length=1, max_length=MAX_PAGE_ROWS)
    version: int | None = Field(default=None, ge=0)


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
