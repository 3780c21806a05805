"""What a warehouse target loads and how many rows that is (``defs/warehouse/assets.py``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pyarrow.dataset as ds

from mlsec_platform.defs.warehouse.assets import TARGETS
from mlsec_platform.settings import Zone
from mlsec_platform.storage.snapshots import Snapshot


def _snapshot(table: pa.Table) -> Snapshot:
    return Snapshot(Zone.FEATURES, "t", "s3://bucket/t", 3, ds.dataset(table))


def test_an_online_store_counts_one_row_per_entity_as_it_loads():
    online = next(t for t in TARGETS if t.source.feature_group is not None)
    entity = online.source.feature_group.entity
    start = datetime(2026, 1, 1, tzinfo=UTC)
    entities = ["a", "b", "a", None, "c", None, "a"]  # a NULL entity is one entity
    table = pa.table(
        {
            entity: pa.array(entities, pa.string()),
            "event_timestamp": [start + timedelta(days=i) for i in range(len(entities))],
            "value": list(range(len(entities))),
        }
    )
    loaded = online.rows(_snapshot(table))
    assert loaded.num_rows == online.row_count(_snapshot(table)) == 4
    assert sorted(loaded.column("value").to_pylist()) == [1, 4, 5, 6]  # the latest of each


def test_a_gold_table_counts_all_its_rows():
    gold = next(t for t in TARGETS if t.source.feature_group is None)
    table = pa.table({"x": list(range(5))})
    assert gold.row_count(_snapshot(table)) == gold.rows(_snapshot(table)).num_rows == 5
