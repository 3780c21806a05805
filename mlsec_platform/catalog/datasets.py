"""The data catalog, as code: every Silver, Gold and feature dataset with its governance tags.

One entry per table; the types are in :mod:`mlsec_platform.catalog.governance`. Unknown names
raise: nothing is ever ungoverned by default.
"""

from __future__ import annotations

import pyarrow as pa

from mlsec_platform.catalog.columns import (
    ALL_PURPOSES,
    CITY,
    CONF,
    CUSTOMER_TOKEN,
    DATE,
    F64,
    I32,
    I64,
    MONEY,
    PEOPLE,
    RAW_BATCH,
    STATE,
    TS,
    ZIP3,
    S,
    col,
    key,
    token,
)
from mlsec_platform.catalog.governance import (
    DatasetSpec,
    DataSubject,
    FeatureGroup,
    Generalisation,
    Mask,
    PiiKind,
    Purpose,
)
from mlsec_platform.settings import Zone

#: The statuses an order may have (Olist's vocabulary); Silver refuses any other.
ORDER_STATUSES: tuple[str, ...] = (
    "delivered", "shipped", "canceled", "unavailable", "invoiced", "processing", "created",
    "approved",
)  # fmt: skip


def _datasets(*specs: DatasetSpec) -> dict[str, DatasetSpec]:
    return {s.id: s for s in specs}


SILVER = _datasets(
    DatasetSpec(
        Zone.SILVER, "customers", "customers",
        "One row per order-customer, direct identifiers tokenized, location generalised.",
        (
            key("customer_id", "Customer id of one order (Olist: one per order).",
                pii=PiiKind.LINKED),
            CUSTOMER_TOKEN,
            ZIP3,
            CITY,
            STATE,
            token("name_token", "full name", from_column="customer_name", domain=PEOPLE),
            token("cpf_token", "CPF", from_column="customer_cpf", domain=PEOPLE),
            token("email_token", "e-mail address", from_column="customer_email", domain=PEOPLE),
            col("email_domain", S, "Domain of the e-mail address.", pii=PiiKind.QUASI,
                mask=Mask.REDACT, generalised=Generalisation.EMAIL_DOMAIN,
                from_column="customer_email"),
            token("phone_token", "phone number", from_column="customer_phone", domain=PEOPLE),
            col("phone_area_code", S, "Area code (DDD) of the phone number.",
                pii=PiiKind.QUASI, mask=Mask.REDACT, generalised=Generalisation.PHONE_AREA_CODE,
                from_column="customer_phone"),
            token("address_token", "street address", from_column="customer_street_address",
                  domain=PEOPLE),
            RAW_BATCH,
        ),
        # Person-level identifiers: for serving and protecting customers, not for analysis.
        key=("customer_id",), purposes=frozenset({Purpose.CUSTOMER_SUPPORT, Purpose.FRAUD}),
        row_security_key="customer_state",
    ),
    DatasetSpec(
        Zone.SILVER, "orders", "orders", "Orders, typed, one row per order.",
        (
            key("order_id", "Order id.", pii=PiiKind.LINKED),
            key("customer_id", "Customer id of the order.", pii=PiiKind.LINKED),
            key("order_status", "Status (delivered, shipped, canceled, ...)."),
            key("purchased_at", "Purchase time.", TS),
            col("approved_at", TS, "Payment approval time."),
            col("delivered_carrier_at", TS, "Handed to the carrier."),
            col("delivered_customer_at", TS, "Delivered to the customer."),
            col("estimated_delivery_date", DATE, "Promised delivery date."),
            RAW_BATCH,
        ),
        key=("order_id",), purposes=ALL_PURPOSES,
    ),
    DatasetSpec(
        Zone.SILVER, "order_items", "orders", "Items of each order (the fact grain), typed.",
        (
            key("order_id", "Order id.", pii=PiiKind.LINKED),
            key("order_item_id", "Position of the item in its order (1, 2, ...).", I32),
            key("product_id", "Product id."),
            key("seller_id", "Seller id."),
            col("shipping_limit_at", TS, "Seller's shipping deadline."),
            key("price", "Item price (BRL).", MONEY),
            key("freight_value", "Freight for the item (BRL).", MONEY),
            RAW_BATCH,
        ),
        key=("order_id", "order_item_id"), purposes=ALL_PURPOSES,
    ),
    DatasetSpec(
        Zone.SILVER, "order_payments", "payments", "Payments of each order, typed.",
        (
            key("order_id", "Order id.", pii=PiiKind.LINKED),
            key("payment_sequential", "Sequence of the payment within its order.", I32),
            key("payment_type", "credit_card, boleto, voucher, debit_card or not_defined."),
            col("payment_installments", I32, "Number of installments."),
            key("payment_value", "Amount paid (BRL).", MONEY),
            RAW_BATCH,
        ),
        key=("order_id", "payment_sequential"), purposes=ALL_PURPOSES - {Purpose.MARKETING},
    ),
    DatasetSpec(
        Zone.SILVER, "order_reviews", "reviews",
        "Reviews; e-mail addresses and phone numbers in free text are replaced by their tokens.",
        (
            key("review_id", "Review id."),
            key("order_id", "Order id.", pii=PiiKind.LINKED),
            key("review_score", "Score from 1 to 5.", I32),
            col("review_comment_title", S, "Title (identifiers scrubbed).", sensitivity=CONF,
                mask=Mask.REDACT, scrubbed=True, token_domain=PEOPLE),
            col("review_comment_message", S, "Message (identifiers scrubbed).", sensitivity=CONF,
                mask=Mask.REDACT, scrubbed=True, token_domain=PEOPLE),
            col("review_created_on", DATE, "Day the survey was sent."),
            col("review_answered_at", TS, "When the customer answered."),
            RAW_BATCH,
        ),
        key=("review_id", "order_id"), purposes=ALL_PURPOSES,
    ),
    DatasetSpec(
        Zone.SILVER, "products", "catalog", "Products with their category in both languages.",
        (
            key("product_id", "Product id."),
            col("category", S, "Category (Portuguese, as in Olist)."),
            col("category_english", S, "Category (English)."),
            col("name_length", I32, "Length of the product name."),
            col("description_length", I32, "Length of the description."),
            col("photos_qty", I32, "Number of photos."),
            col("weight_g", I32, "Weight in grams."),
            col("length_cm", I32, "Length in cm."),
            col("height_cm", I32, "Height in cm."),
            col("width_cm", I32, "Width in cm."),
            RAW_BATCH,
        ),
        key=("product_id",), purposes=ALL_PURPOSES,
    ),
    DatasetSpec(
        Zone.SILVER, "sellers", "catalog", "Sellers (businesses; no personal data).",
        (
            key("seller_id", "Seller id."),
            col("seller_zip_prefix", S, "Zip code prefix."),
            col("seller_city", S, "City."),
            key("seller_state", "Federative unit (UF)."),
            RAW_BATCH,
        ),
        key=("seller_id",), purposes=ALL_PURPOSES,
    ),
    DatasetSpec(
        Zone.SILVER, "product_categories", "catalog", "Category names, Portuguese to English.",
        (
            key("category", "Category (Portuguese)."),
            key("category_english", "Category (English)."),
            RAW_BATCH,
        ),
        key=("category",), purposes=ALL_PURPOSES,
    ),
    DatasetSpec(
        Zone.SILVER, "geolocation", "geo", "Zip code prefixes with coordinates (deduplicated).",
        (
            key("zip_prefix", "Zip code prefix."),
            col("lat", F64, "Latitude."),
            col("lng", F64, "Longitude."),
            col("city", S, "City."),
            col("state", S, "Federative unit (UF)."),
            RAW_BATCH,
        ),
        key=("zip_prefix", "lat", "lng", "city", "state"), purposes=ALL_PURPOSES,
    ),
    DatasetSpec(
        Zone.SILVER, "order_events", "orders", "Order lifecycle events, typed, one per event id.",
        (
            key("event_id", "Event id (the NATS message id)."),
            key("event_type", "created, approved, shipped, delivered or canceled."),
            key("order_id", "Order id.", pii=PiiKind.LINKED),
            col("customer_id", S, "Customer id of the order.", pii=PiiKind.LINKED),
            key("status", "Order status after the event."),
            key("occurred_at", "When it happened.", TS),
            col("seller_id", S, "Seller, for shipping events."),
            RAW_BATCH,
        ),
        key=("event_id",), purposes=ALL_PURPOSES,
    ),
)  # fmt: skip

YEAR_MONTH = key("year_month", "Month of purchase (YYYY-MM).")

GOLD = _datasets(
    DatasetSpec(
        Zone.GOLD, "dim_customer", "customers",
        "One row per person (customer token), location from their latest order.",
        (
            CUSTOMER_TOKEN,
            ZIP3,
            CITY,
            STATE,
            col("customer_region", S, "Macro-region of the state."),
            key("first_purchase_at", "First purchase.", TS,
                sensitivity=CONF, mask=Mask.TRUNCATE_DATE),
            key("orders", "Number of orders.", I64),
        ),
        key=("customer_token",), purposes=ALL_PURPOSES, row_security_key="customer_state",
    ),
    DatasetSpec(
        Zone.GOLD, "dim_product", "catalog", "Products.",
        (
            key("product_id", "Product id."),
            col("category", S, "Category (Portuguese)."),
            col("category_english", S, "Category (English)."),
            col("weight_g", I32, "Weight in grams."),
            col("volume_cm3", I64, "Length x height x width."),
            col("photos_qty", I32, "Number of photos."),
        ),
        key=("product_id",), purposes=ALL_PURPOSES,
    ),
    DatasetSpec(
        Zone.GOLD, "dim_seller", "catalog", "Sellers.",
        (
            key("seller_id", "Seller id."),
            col("seller_zip_prefix", S, "Zip code prefix."),
            col("seller_city", S, "City."),
            key("seller_state", "Federative unit (UF)."),
            col("seller_region", S, "Macro-region."),
        ),
        key=("seller_id",), purposes=ALL_PURPOSES,
    ),
    DatasetSpec(
        Zone.GOLD, "dim_date", "calendar", "Calendar days spanning the orders.",
        (
            key("date_key", "The day.", DATE),
            key("year", "Year.", I32),
            key("quarter", "Quarter (1-4).", I32),
            key("month", "Month (1-12).", I32),
            key("day", "Day of month.", I32),
            key("iso_weekday", "ISO weekday (1 = Monday).", I32),
            key("is_weekend", "Saturday or Sunday.", pa.bool_()),
            key("year_month", "YYYY-MM."),
        ),
        key=("date_key",), purposes=ALL_PURPOSES,
    ),
    DatasetSpec(
        Zone.GOLD, "fact_order_item", "orders",
        "One row per order item (no fan-out: reviews and payments are aggregated per order).",
        (
            key("order_id", "Order id.", pii=PiiKind.LINKED),
            key("order_item_id", "Position of the item in its order.", I32),
            CUSTOMER_TOKEN,
            key("product_id", "Product id."),
            key("seller_id", "Seller id."),
            key("date_key", "Purchase day (dim_date).", DATE),
            key("purchased_at", "Purchase time.", TS),
            key("order_status", "Order status."),
            key("price", "Item price (BRL).", MONEY),
            key("freight_value", "Freight (BRL).", MONEY),
            key("item_total", "Price plus freight (BRL).", MONEY),
            col("delivered_at", TS, "Delivered to the customer."),
            col("estimated_delivery_date", DATE, "Promised delivery date."),
            col("delivery_delay_days", I32, "Days delivered after the promise (negative: early)."),
            col("is_late", pa.bool_(), "Delivered after the promised date."),
            col("review_score", F64, "Mean review score of the order."),
            STATE,
            key("seller_state", "Seller's UF."),
            RAW_BATCH,
        ),
        key=("order_id", "order_item_id"), purposes=ALL_PURPOSES,
        row_security_key="customer_state",
    ),
    DatasetSpec(
        Zone.GOLD, "kpi_sales_monthly", "orders", "Sales by month, customer state and category.",
        (
            YEAR_MONTH,
            STATE,
            key("category_english", "Category (English; 'unknown' when missing)."),
            key("orders", "Distinct orders.", I64),
            key("items", "Items sold.", I64),
            key("revenue", "Sum of item prices (BRL).", MONEY),
            key("freight", "Sum of freight (BRL).", MONEY),
        ),
        key=("year_month", "customer_state", "category_english"), purposes=ALL_PURPOSES,
        row_security_key="customer_state",
    ),
    DatasetSpec(
        Zone.GOLD, "kpi_delivery", "orders", "Delivery delay by month and customer state.",
        (
            YEAR_MONTH,
            STATE,
            key("delivered_orders", "Delivered orders.", I64),
            key("late_orders", "Delivered after the promised date.", I64),
            key("late_rate", "late_orders / delivered_orders.", F64),
            col("avg_delivery_days", F64, "Mean days from purchase to delivery."),
            col("avg_delay_days", F64, "Mean days delivered after the promise."),
        ),
        key=("year_month", "customer_state"), purposes=ALL_PURPOSES,
        row_security_key="customer_state",
    ),
    DatasetSpec(
        Zone.GOLD, "kpi_review_score", "reviews", "Review scores by month and category.",
        (
            YEAR_MONTH,
            key("category_english", "Category (English; 'unknown' when missing)."),
            key("reviewed_orders", "Orders with a review.", I64),
            key("avg_score", "Mean score.", F64),
            key("share_low", "Share of orders scored 1 or 2.", F64),
            key("share_top", "Share of orders scored 5.", F64),
        ),
        key=("year_month", "category_english"), purposes=ALL_PURPOSES,
    ),
)  # fmt: skip

FEATURES = _datasets(
    DatasetSpec(
        Zone.FEATURES, "customer_rfm", "customers",
        "Feature group customer_rfm v1: recency, frequency, monetary, review and late-delivery "
        "behaviour per person, as of each month end in which they bought (point-in-time).",
        (
            CUSTOMER_TOKEN,
            key("event_timestamp", "As-of time of the values (a month end, UTC).", TS),
            STATE,
            key("recency_days", "Days since the last order, as of event_timestamp.", I32),
            key("frequency", "Orders up to event_timestamp.", I64),
            key("monetary", "Spend up to event_timestamp (BRL, items + freight).", MONEY,
                sensitivity=CONF, mask=Mask.ROUND),
            col("avg_review_score", F64, "Mean review score given up to event_timestamp."),
            col("late_delivery_rate", F64, "Share of delivered orders that arrived late."),
            key("feature_group_version", "customer_rfm:v<n>."),
            key("materialized_at", "When this version was computed.", TS),
        ),
        key=("customer_token", "event_timestamp"), purposes=ALL_PURPOSES - {Purpose.FRAUD},
        row_security_key="customer_state", version=1,
        feature_group=FeatureGroup("customer_rfm", entity="customer_token",
                                   online_schema="features", online_name="customer_rfm_online"),
    ),
    DatasetSpec(
        Zone.FEATURES, "customer_order_status", "orders",
        "Feature group customer_order_status v1: per person, where their orders stand now, from "
        "the order lifecycle events (one row per person, as of their latest event).",
        (
            CUSTOMER_TOKEN,
            key("event_timestamp", "When the person's latest order event happened (UTC).", TS),
            STATE,
            key("last_order_status", "Status of the person's most recently changed order."),
            key("orders", "Orders with at least one event.", I64),
            key("orders_open", "Orders neither delivered, canceled nor unavailable.", I64),
            key("orders_delivered", "Orders delivered.", I64),
            key("orders_canceled", "Orders canceled or unavailable.", I64),
            key("events", "Order events received.", I64),
            key("feature_group_version", "customer_order_status:v<n>."),
            key("materialized_at", "When this row was computed.", TS),
        ),
        key=("customer_token",), purposes=ALL_PURPOSES - {Purpose.FRAUD},
        row_security_key="customer_state", version=1,
        feature_group=FeatureGroup("customer_order_status", entity="customer_token",
                                   online_schema="features",
                                   online_name="customer_order_status_online"),
    ),
)  # fmt: skip

CATALOG: dict[str, DatasetSpec] = {**SILVER, **GOLD, **FEATURES}
#: Customers are the platform's data subjects: the one place their identifiers are, and the token
#: that names a person everywhere (``mlsec erase`` finds everything else from the tags).
CUSTOMERS = DataSubject(SILVER["silver/customers"], CUSTOMER_TOKEN)
#: Feature datasets served by entity, by feature-group name.
FEATURE_GROUPS: dict[str, DatasetSpec] = {
    s.feature_group.name: s for s in FEATURES.values() if s.feature_group is not None
}


def dataset(dataset_id: str) -> DatasetSpec:
    """The catalog entry for ``<zone>/<name>``; unknown datasets raise (fail closed)."""
    try:
        return CATALOG[dataset_id]
    except KeyError:
        raise KeyError(f"unknown dataset {dataset_id!r}: not in the catalog") from None
