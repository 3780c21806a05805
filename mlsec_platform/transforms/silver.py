"""Raw -> Silver transforms: typing and deduplication, as SQL for both engines.

Pure functions of Arrow tables, with no credentials, tokenization or gates: the Silver assets
wrap them with those, and the pipeline benchmark runs them bare as its ungoverned baseline.

Every Raw value is text; here it gets its catalog type (``TRY_CAST``: a value that does not
parse becomes NULL, which the quality gate then refuses where the column is required). Rows
are deduplicated by their catalog key, keeping the most recently ingested version.

Personal data stays clear here, named as in Raw: the catalog's tags say which columns are
tokenized, generalised or scrubbed, and the Silver asset applies them
(``privacy/deidentify.py``). Each transform is registered for its catalog dataset with
``@silver_transform``; with the source's contract and the catalog entry, that is all a
Silver asset is generated from (``defs/silver``).

Each transform is SQL over the views ``raw``, ``excluded`` (batch ids an operator excluded) and
its Silver inputs by name, in the common subset of DuckDB and Spark SQL (``TRY_CAST``, window
functions; no ``QUALIFY``, which Spark lacks): DuckDB runs it here over Arrow, Spark Connect on
the engine over the Delta tables themselves (``defs/silver``). Calling a transform runs it on
DuckDB.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.dataset as ds

from mlsec_platform.transforms.duck import run_sql

Rows = pa.Table | ds.Dataset
#: The row-number column of the deduplication, dropped from every result.
RANK = "_silver_rank"


@dataclass(frozen=True)
class SilverTransform:
    """How one Silver dataset is made from its Raw table."""

    #: The catalog id, ``silver/<name>``.
    dataset: str
    #: The Raw table it reads: a file source's name or ``events_<domain>``.
    source: str
    #: The SQL (both engines) over ``raw``, ``excluded`` and the inputs: typed, deduplicated
    #: rows, personal data clear, plus the column :data:`RANK` (1 on every row).
    sql: str
    #: Other Silver tables it joins, as views of their names (read at their latest version).
    inputs: tuple[str, ...] = ()
    #: A Raw column that groups the rows of each key (the key, or a coarser grouping), and the
    #: Silver column it becomes: an incremental run recomputes every group a new Raw row falls
    #: in (:func:`rows_of_groups`) and replaces those groups' rows. None: always rebuilt whole.
    group: tuple[str, str] | None = None

    def __call__(self, raw: Rows, excluded: Iterable[str] = (), **inputs: Rows) -> pa.Table:
        """The transform on DuckDB over in-memory (or lazily scanned) tables."""
        table = run_sql(self.sql, raw=raw, excluded=excluded_table(excluded), **inputs)
        return table.drop_columns([RANK])


#: Silver dataset id -> its transform; every Silver catalog entry has one.
SILVER_TRANSFORMS: dict[str, SilverTransform] = {}


def silver_transform(
    dataset: str,
    *,
    source: str,
    inputs: tuple[str, ...] = (),
    group: tuple[str, str] | None = None,
):
    """Register the decorated function's SQL as the transform of ``dataset`` from ``source``;
    ``group``: the Raw column that holds each key's rows together and its Silver name (see
    :attr:`SilverTransform.group`; without it every run rebuilds the table in full)."""

    def register(function: Callable[[], str]) -> Callable[[], str]:
        if dataset in SILVER_TRANSFORMS:
            raise ValueError(f"{dataset} has a transform already ({function.__name__})")
        SILVER_TRANSFORMS[dataset] = SilverTransform(
            dataset, source, function(), tuple(inputs), group
        )
        return function

    return register


def latest(key: str, select: str, source: str = "raw", where: str = "TRUE") -> str:
    """``select`` over the latest ingested row of each ``key`` in ``source``, excluded batches
    skipped, with the Raw batch each row came from (``_raw_batch_id``).

    ``NOT EXISTS``, not ``NOT IN``: Raw's ``_batch_id`` is never null, so both keep the same
    rows, but ``NOT IN`` is a null-aware anti join, which the Spark engine (Sail) can only run
    with Raw as its build side: the whole Raw table collected into one hash table, in one
    partition, before the deduplication starts. ``NOT EXISTS`` builds on ``excluded`` (a few
    rows) and scans Raw in parallel."""
    return f"""
        SELECT * FROM (
            SELECT {select}, _batch_id AS _raw_batch_id,
                   row_number() OVER (
                       PARTITION BY {key} ORDER BY _ingested_at DESC, _batch_id DESC) AS {RANK}
            FROM {source} AS _rows
            WHERE NOT EXISTS (SELECT 1 FROM excluded x WHERE x.batch_id = _rows._batch_id)
                AND ({where})
        ) ranked WHERE {RANK} = 1
    """


def rows_of_groups(raw: Rows, added: Rows, column: str) -> pa.Table:
    """Every row of ``raw`` (all batches) in a group (a value of ``column``) that ``added`` has
    a row in. A transform ranks each key's rows on their own, so over these rows it gives
    exactly what it gives over all of Raw for those groups: the rows an incremental run
    replaces those groups' rows with."""
    return run_sql(
        f'SELECT * FROM raw WHERE "{column}" IN (SELECT "{column}" FROM added)',
        raw=raw,
        added=added,
    )


def excluded_table(batches: Iterable[str]) -> pa.Table:
    return pa.table({"batch_id": pa.array(sorted(batches), pa.string())})


TS = "TRY_CAST({} AS TIMESTAMP)"


@silver_transform(
    "silver/customers",
    source="olist_customers",
    group=("customer_id", "customer_id"),
)
def customers() -> str:
    """Typed customers, identifiers and location as in Raw (the catalog de-identifies them)."""
    return latest(
        "customer_id",
        """customer_id, customer_unique_id, customer_zip_code_prefix,
           customer_city, customer_state,
           customer_name, customer_cpf, customer_email, customer_phone,
           customer_street_address""",
    )


@silver_transform(
    "silver/orders",
    source="olist_orders",
    group=("order_id", "order_id"),
)
def orders() -> str:
    return latest(
        "order_id",
        f"""order_id, customer_id, order_status,
           {TS.format("order_purchase_timestamp")} AS purchased_at,
           {TS.format("order_approved_at")} AS approved_at,
           {TS.format("order_delivered_carrier_date")} AS delivered_carrier_at,
           {TS.format("order_delivered_customer_date")} AS delivered_customer_at,
           CAST({TS.format("order_estimated_delivery_date")} AS DATE)
               AS estimated_delivery_date""",
    )


@silver_transform(
    "silver/order_items",
    source="olist_order_items",
    group=("order_id", "order_id"),
)
def order_items() -> str:
    return latest(
        "order_id, order_item_id",
        f"""order_id, TRY_CAST(order_item_id AS INTEGER) AS order_item_id, product_id,
           seller_id, {TS.format("shipping_limit_date")} AS shipping_limit_at,
           TRY_CAST(price AS DECIMAL(14, 2)) AS price,
           TRY_CAST(freight_value AS DECIMAL(14, 2)) AS freight_value""",
    )


@silver_transform(
    "silver/order_payments",
    source="olist_order_payments",
    group=("order_id", "order_id"),
)
def order_payments() -> str:
    return latest(
        "order_id, payment_sequential",
        """order_id, TRY_CAST(payment_sequential AS INTEGER) AS payment_sequential,
           payment_type, TRY_CAST(payment_installments AS INTEGER) AS payment_installments,
           TRY_CAST(payment_value AS DECIMAL(14, 2)) AS payment_value""",
    )


@silver_transform(
    "silver/order_reviews",
    source="olist_order_reviews",
    group=("order_id", "order_id"),
)
def order_reviews() -> str:
    """Typed reviews; free text still unscrubbed (the catalog tags it scrubbed)."""
    return latest(
        "review_id, order_id",
        f"""review_id, order_id, TRY_CAST(review_score AS INTEGER) AS review_score,
           review_comment_title, review_comment_message,
           CAST({TS.format("review_creation_date")} AS DATE) AS review_created_on,
           {TS.format("review_answer_timestamp")} AS review_answered_at""",
    )


@silver_transform(
    "silver/product_categories",
    source="product_category_name_translation",
    group=("product_category_name", "category"),
)
def product_categories() -> str:
    return latest(
        "product_category_name",
        "product_category_name AS category, product_category_name_english AS category_english",
    )


@silver_transform(
    "silver/products",
    source="olist_products",
    group=("product_id", "product_id"),
    inputs=("product_categories",),
)
def products() -> str:
    typed = latest(
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
    return f"""
        WITH p AS ({typed})
        SELECT p.product_id, p.category, c.category_english, p.name_length,
               p.description_length, p.photos_qty, p.weight_g, p.length_cm, p.height_cm,
               p.width_cm, p._raw_batch_id, p.{RANK}
        FROM p LEFT JOIN product_categories c ON c.category = p.category
    """


@silver_transform(
    "silver/sellers",
    source="olist_sellers",
    group=("seller_id", "seller_id"),
)
def sellers() -> str:
    return latest(
        "seller_id",
        "seller_id, seller_zip_code_prefix AS seller_zip_prefix, seller_city, seller_state",
    )


@silver_transform(
    "silver/geolocation",
    source="olist_geolocation",
    group=("geolocation_zip_code_prefix", "zip_prefix"),
)
def geolocation() -> str:
    columns = "zip_prefix, lat, lng, city, state"
    return f"""
        WITH typed AS (
            SELECT geolocation_zip_code_prefix AS zip_prefix,
                   TRY_CAST(geolocation_lat AS DOUBLE) AS lat,
                   TRY_CAST(geolocation_lng AS DOUBLE) AS lng,
                   geolocation_city AS city, geolocation_state AS state,
                   _batch_id, _ingested_at
            FROM raw
        )
        {latest(columns, columns, source="typed")}
    """


@silver_transform(
    "silver/order_events",
    source="events_order_status",
    group=("event_id", "event_id"),
)
def order_events() -> str:
    return latest(
        "event_id",
        f"""event_id, replace(event_type, 'order_', '') AS event_type, order_id,
           customer_id, status,
           {TS.format("replace(replace(occurred_at, 'T', ' '), 'Z', '')")} AS occurred_at,
           seller_id""",
    )
