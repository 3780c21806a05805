"""Silver: Raw typed, deduplicated and de-identified, one asset per source, each behind its gate.

Every asset reads its Raw table at the latest Delta version (recorded as ``lineage/inputs``),
skips the Raw batches an operator excluded after a gate failure, applies its transform
(``transforms/silver.py``), tokenizes direct identifiers, and commits only if the batch passes the
pandera gate generated from the catalog. Written by the ``pipeline`` identity.
"""

import time
from collections.abc import Callable

import dagster as dg
import pyarrow as pa

from mlsec_platform.catalog.datasets import dataset
from mlsec_platform.catalog.sources import EVENT_DOMAINS, FILE_SOURCES
from mlsec_platform.defs.catalog import asset_key, asset_metadata
from mlsec_platform.privacy.key import TokenizationResource
from mlsec_platform.privacy.scrubbing import scrub
from mlsec_platform.privacy.tokenization import TOKEN_DOMAIN, Tokenizer
from mlsec_platform.quality.gates import QualityGate
from mlsec_platform.resources.s3_lake import S3LakeResource
from mlsec_platform.settings import Zone
from mlsec_platform.storage.quarantine import excluded_batches
from mlsec_platform.storage.raw_writer import LINEAGE_COLUMNS, STREAM_COLUMNS
from mlsec_platform.storage.snapshots import Snapshot, lineage_metadata, read_snapshot
from mlsec_platform.transforms import silver as transforms

CODE_VERSION = "1"

#: Customer identifiers: Raw column -> Silver token column (all in the `customers` domain).
CUSTOMER_TOKENS = {
    "customer_unique_id": "customer_token",
    "customer_name": "name_token",
    "customer_cpf": "cpf_token",
    "customer_email": "email_token",
    "customer_phone": "phone_token",
    "customer_street_address": "address_token",
}


def raw_schema(source: str) -> pa.Schema:
    contract = FILE_SOURCES.get(source) or EVENT_DOMAINS[source.removeprefix("events_")]
    schema = contract.raw_schema()
    extra = STREAM_COLUMNS if source not in FILE_SOURCES else ()
    for name in (*extra, *LINEAGE_COLUMNS):
        schema = schema.append(pa.field(name, pa.string()))
    return schema


def read_raw(lake: S3LakeResource, source: str) -> tuple[Snapshot, set[str]]:
    """The Raw table of ``source`` (empty if nothing was ingested yet) and its excluded batches."""
    snapshot = read_snapshot(lake, Zone.RAW, source, schema=raw_schema(source))
    return snapshot, excluded_batches(lake, source)


def tokenize_customers(table: pa.Table, tokenizer: Tokenizer) -> pa.Table:
    """Replace the clear identifier columns by their tokens (one pass over distinct values)."""
    tokens = tokenizer.tokenize_many(
        {raw: table.column(raw) for raw in CUSTOMER_TOKENS}, TOKEN_DOMAIN
    )
    for raw, token in CUSTOMER_TOKENS.items():
        index = table.column_names.index(raw)
        table = table.set_column(index, token, tokens[raw])
    return table


def scrub_reviews(table: pa.Table, tokenizer: Tokenizer) -> pa.Table:
    for name in ("review_comment_title", "review_comment_message"):
        index = table.column_names.index(name)
        table = table.set_column(index, name, scrub(table.column(name), tokenizer, TOKEN_DOMAIN))
    return table


Build = Callable[[dg.AssetExecutionContext, S3LakeResource, Tokenizer | None], tuple]


def silver_asset(name: str, source: str, build: Build, *, deps=(), tokenizes: bool = False):
    """A Silver asset over ``raw/<source>``: ``build`` returns (table, snapshots, gate params)."""
    spec = dataset(f"silver/{name}")
    gate = QualityGate(spec)

    @dg.asset(
        key=asset_key(spec),
        deps=[dg.AssetKey(["raw", source]), *deps],
        group_name="silver",
        io_manager_key="lakehouse_io_manager",
        code_version=CODE_VERSION,
        kinds={"delta", "duckdb", "s3"},
        owners=["team:data-platform"],
        tags=spec.asset_tags(),
        metadata=asset_metadata(spec),
        check_specs=gate.check_specs,
        description=f"{spec.description} From raw/{source}; gated by its pandera schema.",
    )
    def _silver(
        context: dg.AssetExecutionContext,
        lake_pipeline: S3LakeResource,
        tokenization: TokenizationResource,
    ):
        started = time.perf_counter()
        tokenizer = tokenization.tokenizer() if tokenizes else None
        table, snapshots, params = build(context, lake_pipeline, tokenizer)
        metadata = lineage_metadata(snapshots)
        metadata["transform_seconds"] = round(time.perf_counter() - started, 2)
        if tokenizer is not None:
            metadata["tokenization/key_version"] = tokenizer.version
        yield from gate.commit(context, table, lake_pipeline, metadata=metadata, **params)

    return _silver


def _simple(source: str, transform) -> Build:
    def build(context, lake, tokenizer):
        raw, excluded = read_raw(lake, source)
        return transform(raw.dataset, excluded), [raw], {}

    return build


def _customers(context, lake, tokenizer):
    raw, excluded = read_raw(lake, "olist_customers")
    return tokenize_customers(transforms.customers(raw.dataset, excluded), tokenizer), [raw], {}


def _reviews(context, lake, tokenizer):
    raw, excluded = read_raw(lake, "olist_order_reviews")
    return scrub_reviews(transforms.order_reviews(raw.dataset, excluded), tokenizer), [raw], {}


def _products(context, lake, tokenizer):
    raw, excluded = read_raw(lake, "olist_products")
    categories = read_snapshot(lake, Zone.SILVER, "product_categories")
    table = transforms.products(raw.dataset, categories.dataset, excluded)
    known = categories.table.column("category").to_pylist()
    return table, [raw, categories], {"categories": known}


customers = silver_asset("customers", "olist_customers", _customers, tokenizes=True)
orders = silver_asset("orders", "olist_orders", _simple("olist_orders", transforms.orders))
order_items = silver_asset(
    "order_items", "olist_order_items", _simple("olist_order_items", transforms.order_items)
)
order_payments = silver_asset(
    "order_payments",
    "olist_order_payments",
    _simple("olist_order_payments", transforms.order_payments),
)
order_reviews = silver_asset("order_reviews", "olist_order_reviews", _reviews, tokenizes=True)
product_categories = silver_asset(
    "product_categories",
    "product_category_name_translation",
    _simple("product_category_name_translation", transforms.product_categories),
)
products = silver_asset(
    "products", "olist_products", _products, deps=[dg.AssetKey(["silver", "product_categories"])]
)
sellers = silver_asset("sellers", "olist_sellers", _simple("olist_sellers", transforms.sellers))
geolocation = silver_asset(
    "geolocation", "olist_geolocation", _simple("olist_geolocation", transforms.geolocation)
)
order_events = silver_asset(
    "order_events",
    "events_order_status",
    _simple("events_order_status", transforms.order_events),
)
