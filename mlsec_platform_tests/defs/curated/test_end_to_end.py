"""Raw -> Silver -> Gold -> features at 100k orders: reconciled against Raw."""

from decimal import Decimal

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable

from mlsec_platform.settings import Zone


def _read(curated, zone: Zone, name: str, columns=None) -> pa.Table:
    lake = curated.resources["lake_pipeline"]
    table = DeltaTable(lake.table_uri(zone, name), storage_options=lake.storage_options())
    return pa.table(table.to_pyarrow_dataset().to_table(columns=columns))


def test_fact_revenue_equals_raw_item_prices(curated):
    raw = _read(curated, Zone.RAW, "olist_order_items", ["order_id", "order_item_id", "price"])
    fact = _read(curated, Zone.GOLD, "fact_order_item", ["order_id", "order_item_id", "price"])
    # Raw may hold the same item twice (re-uploads); Silver keeps one per key.
    distinct = raw.group_by(["order_id", "order_item_id"]).aggregate([("price", "max")])
    raw_total = sum(Decimal(p) for p in distinct.column("price_max").to_pylist())
    assert fact.num_rows == distinct.num_rows
    assert pc.sum(fact.column("price")).as_py() == raw_total
