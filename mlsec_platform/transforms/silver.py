"""Raw -> Silver transforms: typing and deduplication, as DuckDB SQL over Arrow.

Pure functions of Arrow tables, with no credentials, tokenization or gates: the Silver assets
wrap them with those, and the pipeline benchmark runs them bare as its ungoverned baseline.

Every Raw value is text; here it gets its catalog type (``TRY_CAST``: a value that does not
parse becomes NULL, which the quality gate then refuses where the column is required). Rows
are deduplicated by their catalog key, keeping the most recently ingested version.
"""

from __future__ import annotations

from collections.abc import Iterable

import pyarrow as pa

from mlsec_platform.transforms.duck import run_sql


def _latest(key: str, select: str, source: str = "raw", where: str = "TRUE") -> str:
    return f"""
        SELECT {select}, _batch_id AS _raw_batch_id
        FROM {source}
        WHERE _batch_id NOT IN (SELECT batch_id FROM excluded) AND ({where})
        QUALIFY row_number() OVER (
            PARTITION BY {key} ORDER BY _ingested_at DESC, _batch_id DESC) = 1
    """


def _excluded(batches: Iterable[str]) -> pa.Table:
    return pa.table({"batch_id": pa.array(sorted(batches), pa.string())})


TS = "TRY_CAST({} AS TIMESTAMP)"


def customers(raw: pa.Table, excluded: Iterable[str] = ()) -> pa.Table:
    """Typed customers with their identifiers still clear (the asset tokenizes them)."""
    sql = _latest(
        "customer_id",
        """customer_id, customer_unique_id,
           left(customer_zip_code_prefix, 3) AS customer_zip3,
           customer_city, customer_state,
           customer_name, customer_cpf, customer_email,
           lower(nullif(split_part(customer_email, '@', 2), '')) AS email_domain,
           customer_phone,
           nullif(regexp_extract(customer_phone, '\\((\\d{2})\\)', 1), '') AS phone_area_code,
           customer_street_address""",
    )
    return run_sql(sql, raw=raw, excluded=_excluded(excluded))


def orders(raw: pa.Table, excluded: Iterable[str] = ()) -> pa.Table:
    sql = _latest(
        "order_id",
        f"""order_id, customer_id, order_status,
           {TS.format("order_purchase_timestamp")} AS purchased_at,
           {TS.format("order_approved_at")} AS approved_at,
           {TS.format("order_delivered_carrier_date")} AS delivered_carrier_at,
           {TS.format("order_delivered_customer_date")} AS delivered_customer_at,
           CAST({TS.format("order_estimated_delivery_date")} AS DATE)
               AS estimated_delivery_date""",
    )
    return run_sql(sql, raw=raw, excluded=_excluded(excluded))


def order_items(raw: pa.Table, excluded: Iterable[str] = ()) -> pa.Table:
    sql = _latest(
        "order_id, order_item_id",
        f"""order_id, TRY_CAST(order_item_id AS INTEGER) AS order_item_id, product_id,
           seller_id, {TS.format("shipping_limit_date")} AS shipping_limit_at,
           TRY_CAST(price AS DECIMAL(14, 2)) AS price,
           TRY_CAST(freight_value AS DECIMAL(14, 2)) AS freight_value""",
    )
    return run_sql(sql, raw=raw, excluded=_excluded(excluded))


def order_payments(raw: pa.Table, excluded: Iterable[str] = ()) -> pa.Table:
    sql = _latest(
        "order_id, payment_sequential",
        """order_id, TRY_CAST(payment_sequential AS INTEGER) AS payment_sequential,
           payment_type, TRY_CAST(payment_installments AS INTEGER) AS payment_installments,
           TRY_CAST(payment_value AS DECIMAL(14, 2)) AS payment_value""",
    )
    return run_sql(sql, raw=raw, excluded=_excluded(excluded))


def order_reviews(raw: pa.Table, excluded: Iterable[str] = ()) -> pa.Table:
    """Typed reviews; free text still unscrubbed (the asset replaces identifiers in it)."""
    sql = _latest(
        "review_id, order_id",
        f"""review_id, order_id, TRY_CAST(review_score AS INTEGER) AS review_score,
           review_comment_title, review_comment_message,
           CAST({TS.format("review_creation_date")} AS DATE) AS review_created_on,
           {TS.format("review_answer_timestamp")} AS review_answered_at""",
    )
    return run_sql(sql, raw=raw, excluded=_excluded(excluded))


def product_categories(raw: pa.Table, excluded: Iterable[str] = ()) -> pa.Table:
    sql = _latest(
        "product_category_name",
        "product_category_name AS category, product_category_name_english AS category_english",
    )
    return run_sql(sql, raw=raw, excluded=_excluded(excluded))


def products(raw: pa.Table, categories: pa.Table, excluded: Iterable[str] = ()) -> pa.Table:
    typed = _latest(
        "product_id",
        """product_id, product_category_name AS category,
           TRY_CAST(product_name_lenght AS INTEGER) AS name_length,
           TRY_CAST(product_description_lenght AS INTEGER) AS description_length,
           TRY_CAST(product_photos_qty AS INTEGER) AS photos_qty,
           TRY_CAST(product_weight_g AS INTEGER) AS weight_g,
           TRY_CAST(product_length_cm AS INTEGER) AS length_cm,
           TRY_CAST(product_height_cm AS INTEGER) AS height_cm,
           TRY_CAST(product_width_cm AS INTEGER) AS width_cm""",
    )
    sql = f"""
        WITH p AS ({typed})
        SELECT p.product_id, p.category, c.category_english, p.name_length,
               p.description_length, p.photos_qty, p.weight_g, p.length_cm, p.height_cm,
               p.width_cm, p._raw_batch_id
        FROM p LEFT JOIN categories c ON c.category = p.category
    """
    return run_sql(sql, raw=raw, categories=categories, excluded=_excluded(excluded))


def sellers(raw: pa.Table, excluded: Iterable[str] = ()) -> pa.Table:
    sql = _latest(
        "seller_id",
        "seller_id, seller_zip_code_prefix AS seller_zip_prefix, seller_city, seller_state",
    )
    return run_sql(sql, raw=raw, excluded=_excluded(excluded))


def geolocation(raw: pa.Table, excluded: Iterable[str] = ()) -> pa.Table:
    sql = f"""
        WITH typed AS (
            SELECT geolocation_zip_code_prefix AS zip_prefix,
                   TRY_CAST(geolocation_lat AS DOUBLE) AS lat,
                   TRY_CAST(geolocation_lng AS DOUBLE) AS lng,
                   geolocation_city AS city, geolocation_state AS state,
                   _batch_id, _ingested_at
            FROM raw
        )
        {
        _latest(
            "zip_prefix, lat, lng, city, state", "zip_prefix, lat, lng, city, state", source="typed"
        )
    }
    """
    return run_sql(sql, raw=raw, excluded=_excluded(excluded))


def order_events(raw: pa.Table, excluded: Iterable[str] = ()) -> pa.Table:
    sql = _latest(
        "event_id",
        f"""event_id, replace(event_type, 'order_', '') AS event_type, order_id, customer_id,
           status, {TS.format("replace(replace(occurred_at, 'T', ' '), 'Z', '')")}
               AS occurred_at, seller_id""",
    )
    return run_sql(sql, raw=raw, excluded=_excluded(excluded))
