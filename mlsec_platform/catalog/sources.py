"""Source contracts: what each official connector accepts, column by column.

A file source's CSV header must equal its contract's column names, in order. An event domain's
JSON messages must carry exactly its fields with the right JSON types. Raw keeps every value as
received (as text), plus lineage columns; typing happens in Silver.

Bumping ``version`` is how a contract changes; connectors record the version they enforced.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import pyarrow as pa


class Kind(StrEnum):
    """Logical type of a column (what Silver will cast it to)."""

    STRING = "string"
    INTEGER = "integer"
    DECIMAL = "decimal"
    TIMESTAMP = "timestamp"
    DATE = "date"


@dataclass(frozen=True)
class Column:
    name: str
    kind: Kind = Kind.STRING
    required: bool = False


@dataclass(frozen=True)
class SourceContract:
    name: str
    domain: str
    version: int
    key: tuple[str, ...]
    columns: tuple[Column, ...]
    description: str

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def raw_schema(self) -> pa.Schema:
        """Raw keeps values as received: text, nullable."""
        return pa.schema([pa.field(c.name, pa.string()) for c in self.columns])


def _cols(*specs: str | tuple[str, Kind] | tuple[str, Kind, bool]) -> tuple[Column, ...]:
    out = []
    for spec in specs:
        if isinstance(spec, str):
            out.append(Column(spec))
        else:
            out.append(Column(*spec))
    return tuple(out)


S, INT, D, T = Kind.STRING, Kind.INTEGER, Kind.DECIMAL, Kind.TIMESTAMP

FILE_SOURCES: dict[str, SourceContract] = {
    c.name: c
    for c in (
        SourceContract(
            "olist_customers", "customers", 1, ("customer_id",),
            _cols(("customer_id", S, True), ("customer_unique_id", S, True),
                  "customer_zip_code_prefix", "customer_city", "customer_state",
                  "customer_name", "customer_cpf", "customer_email", "customer_phone",
                  "customer_street_address"),
            "Customers of each order, with pt_BR personal data (direct identifiers).",
        ),
        SourceContract(
            "olist_orders", "orders", 1, ("order_id",),
            _cols(("order_id", S, True), ("customer_id", S, True), ("order_status", S, True),
                  ("order_purchase_timestamp", T, True), ("order_approved_at", T),
                  ("order_delivered_carrier_date", T), ("order_delivered_customer_date", T),
                  ("order_estimated_delivery_date", T)),
            "Orders and their lifecycle timestamps.",
        ),
        SourceContract(
            "olist_order_items", "orders", 1, ("order_id", "order_item_id"),
            _cols(("order_id", S, True), ("order_item_id", INT, True), ("product_id", S, True),
                  ("seller_id", S, True), ("shipping_limit_date", T), ("price", D, True),
                  ("freight_value", D, True)),
            "One row per item of an order (the fact grain).",
        ),
        SourceContract(
            "olist_order_payments", "payments", 1, ("order_id", "payment_sequential"),
            _cols(("order_id", S, True), ("payment_sequential", INT, True),
                  ("payment_type", S, True), ("payment_installments", INT),
                  ("payment_value", D, True)),
            "Payments of each order (several for vouchers and split payments).",
        ),
        SourceContract(
            "olist_order_reviews", "reviews", 1, ("review_id", "order_id"),
            _cols(("review_id", S, True), ("order_id", S, True), ("review_score", INT, True),
                  "review_comment_title", "review_comment_message",
                  ("review_creation_date", T), ("review_answer_timestamp", T)),
            "Customer reviews (free text may contain personal data).",
        ),
        SourceContract(
            "olist_products", "catalog", 1, ("product_id",),
            _cols(("product_id", S, True), "product_category_name",
                  ("product_name_lenght", INT), ("product_description_lenght", INT),
                  ("product_photos_qty", INT), ("product_weight_g", INT),
                  ("product_length_cm", INT), ("product_height_cm", INT),
                  ("product_width_cm", INT)),
            "Products (column names as in the public Olist data set, typos included).",
        ),
        SourceContract(
            "olist_sellers", "catalog", 1, ("seller_id",),
            _cols(("seller_id", S, True), "seller_zip_code_prefix", "seller_city",
                  "seller_state"),
            "Sellers on the marketplace.",
        ),
        SourceContract(
            "olist_geolocation", "geo", 1, (),
            _cols(("geolocation_zip_code_prefix", S, True), ("geolocation_lat", D),
                  ("geolocation_lng", D), "geolocation_city", "geolocation_state"),
            "Zip code prefixes with coordinates.",
        ),
        SourceContract(
            "product_category_name_translation", "catalog", 1, ("product_category_name",),
            _cols(("product_category_name", S, True), ("product_category_name_english", S, True)),
            "Category names, Portuguese to English.",
        ),
    )
}  # fmt: skip


@dataclass(frozen=True)
class EventContract:
    """JSON events published on ``raw.<domain>.ingest``; ``event_id`` is the NATS message id."""

    domain: str
    version: int
    fields: dict[str, type | tuple[type, ...]]
    required: frozenset[str]
    description: str

    @property
    def subject(self) -> str:
        return f"raw.{self.domain}.ingest"

    @property
    def source(self) -> str:
        return f"events_{self.domain}"

    def raw_schema(self) -> pa.Schema:
        return pa.schema([pa.field(name, pa.string()) for name in self.fields])


EVENT_DOMAINS: dict[str, EventContract] = {
    e.domain: e
    for e in (
        EventContract(
            "order_status",
            1,
            {
                "event_id": str,
                "event_type": str,
                "order_id": str,
                "customer_id": str,
                "status": str,
                "occurred_at": str,
                "seller_id": (str, type(None)),
            },
            frozenset({"event_id", "event_type", "order_id", "status", "occurred_at"}),
            "Order lifecycle events (created, approved, shipped, delivered, canceled).",
        ),
    )
}
