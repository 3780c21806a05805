"""Incremental curation gives the tables a full rebuild gives.

On a stack of its own (``mlsec_platform_tests/curated_incrementally.py``): a first Raw snapshot is
curated, then two more batches arrive, each with new keys, updates to keys already curated, and
rows sent again unchanged (duplicates across batches); each is curated incrementally (Silver and
the fact table replace the changed keys' rows). Then the same job runs with the full-rebuild
tag over the same Raw, and every Silver, Gold and feature table must equal what the incremental
runs left: values, types, row counts and tokens. Each test runs on both engines: on the Spark
engine (its own stack, with Sail) every run is a Spark run, and DuckDB's full rebuild of the
same Raw afterwards must give the same tables again.
"""

from __future__ import annotations

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from mlsec_platform.catalog.datasets import CATALOG, SILVER
from mlsec_platform_tests.helpers import table_differences
from mlsec_platform_tests.incremental_stack import IncrementalStack


@pytest.fixture(params=["incremental_stack", "spark_incremental_stack"], ids=["duckdb", "spark"])
def curated_incrementally(request) -> IncrementalStack:
    """The scenario of the module, curated on DuckDB or on the Spark engine."""
    return request.getfixturevalue(request.param)


def sort_by_key(dataset_id: str, table: pa.Table) -> pa.Table:
    spec = CATALOG[dataset_id]
    key = list(spec.key) or table.column_names
    return table.sort_by([(c, "ascending") for c in key])


def materializations(result: dg.ExecuteInJobResult) -> dict[str, dict]:
    out = {}
    for event in result.get_asset_materialization_events():
        mat = event.event_specific_data.materialization
        out[mat.asset_key.to_user_string()] = {k: v.value for k, v in mat.metadata.items()}
    return out


def test_later_runs_replace_changed_keys_and_the_full_rebuild_overwrites(curated_incrementally):
    first, *later = (materializations(r) for r in curated_incrementally.runs)
    full = materializations(curated_incrementally.full)
    replaced = {i for i in SILVER if all(m[i]["write_mode"] == "replace" for m in later)}
    # products joins product_categories, whose version every run moves: it rebuilds in full.
    assert replaced == set(SILVER) - {"silver/products"}
    for dataset_id in SILVER:
        assert first[dataset_id]["write_mode"] == "overwrite"
        assert full[dataset_id]["write_mode"] == "overwrite"
        # One Delta version per asset and run, incremental or not.
        versions = [m[dataset_id]["delta_version"] for m in (first, *later, full)]
        assert versions == list(range(versions[0], versions[0] + 4)), (dataset_id, versions)
    # An incremental run carries only the changed keys: the third batch touched a few hundred customers.
    customers = later[-1]["silver/customers"]
    assert 0 < customers["replaced_rows"] < customers["dagster/row_count"] / 2
    facts = [m["gold/fact_order_item"] for m in later]
    assert full["gold/fact_order_item"]["write_mode"] == "overwrite"
    if curated_incrementally.engine == "spark":  # Gold on the engine is rebuilt every run
        assert all(f["write_mode"] == "overwrite" for f in facts)
        # ... so its warehouse loads copy it whole: an overwrite does not name its keys.
        loads = [m["warehouse/fact_order_item"]["seconds"] for m in later]
        assert all("copy" in s for s in loads), loads
        return
    # Gold's fact table replaces the orders its inputs' change feeds name.
    assert all(f["write_mode"] == "replace" for f in facts)
    assert all(0 < f["replaced_rows"] < f["dagster/row_count"] / 2 for f in facts)
    # The order-status features recompute only the people whose events or customers changed.
    status = [m["features/customer_order_status"] for m in later]
    assert all(s["write_mode"] == "replace" and s["incremental"] for s in status)
    assert all(0 < s["replaced_rows"] < s["dagster/row_count"] / 2 for s in status)
    # Its online store takes the changed people (upserted), not a reload of everyone.
    online = [m["warehouse/customer_order_status_online"] for m in later]
    assert all(set(o["seconds"]) == {"stage", "upsert"} for o in online), online
    assert set(full["warehouse/customer_order_status_online"]["seconds"]) >= {"copy"}
    # The RFM features recompute the people whose fact rows changed, and their online store and
    # the warehouse fact table take those people and orders; the rebuild loads both whole.
    rfm = [m["features/customer_rfm"] for m in later]
    assert all(r["write_mode"] == "replace" and r["incremental"] for r in rfm), rfm
    assert all(0 < r["replaced_rows"] < r["dagster/row_count"] / 2 for r in rfm)
    assert full["features/customer_rfm"]["write_mode"] == "overwrite"
    for name, kind in (
        ("fact_order_item", {"delete", "insert"}),
        ("customer_rfm_online", {"stage", "upsert"}),
    ):
        loads = [m[f"warehouse/{name}"]["seconds"] for m in later]
        assert all(set(s) == kind for s in loads), (name, loads)
        assert "copy" in full[f"warehouse/{name}"]["seconds"]


def test_warehouse_tables_taking_changed_keys_equal_the_rebuilds(curated_incrementally):
    """The fact table and the RFM online store as the incremental runs' loads left them (by
    changed keys on DuckDB, whole on Spark) hold the rows the full rebuild's loads hold."""
    stack = curated_incrementally
    for table, rows in stack.warehouse.items():
        assert rows, table
        assert rows == stack.warehouse_full[table], table


def test_the_upserted_online_store_holds_the_offline_table(curated_incrementally):
    from mlsec_platform_tests.incremental_stack import ONLINE_COLUMNS

    offline = curated_incrementally.incremental["features/customer_order_status"]
    rows = sorted(zip(*(offline.column(c).to_pylist() for c in ONLINE_COLUMNS), strict=True))
    assert rows and curated_incrementally.online == rows


def test_incremental_tables_equal_the_full_rebuild(curated_incrementally):
    stack = curated_incrementally
    assert not differences(stack.incremental, stack.full_tables)


def test_spark_tables_equal_duckdbs(spark_incremental_stack):
    """The Spark engine's incremental tables are DuckDB's full rebuild of the same Raw."""
    stack = spark_incremental_stack
    assert {m["engine"] for m in materializations(stack.runs[-1]).values() if "engine" in m} == {
        "spark"
    }
    assert not differences(stack.incremental, stack.duckdb_tables)


def test_a_table_may_change_engines_between_runs(spark_incremental_stack):
    """Each engine replaces the changed keys of tables the other wrote (both record their
    inputs alike), and the result is the full rebuild's."""
    alternated = spark_incremental_stack.alternated
    on_spark, on_duckdb = (materializations(r) for r in alternated.runs)
    for dataset_id in set(SILVER) - {"silver/products"}:
        assert on_spark[dataset_id]["engine"] == "spark"
        assert on_duckdb[dataset_id]["engine"] == "duckdb"
        assert (
            on_spark[dataset_id]["write_mode"] == on_duckdb[dataset_id]["write_mode"] == "replace"
        )
    assert not differences(alternated.tables, alternated.rebuilt)


def differences(tables: dict[str, pa.Table], others: dict[str, pa.Table]) -> dict[str, list]:
    """Per table that differs, how (rows compared in key order)."""
    out = {}
    for dataset_id, before in tables.items():
        after = others[dataset_id]
        if dataset_id.startswith("features/"):  # the time of each materialization differs
            before, after = (t.drop_columns(["materialized_at"]) for t in (before, after))
        diff = table_differences(sort_by_key(dataset_id, before), sort_by_key(dataset_id, after))
        if diff:
            out[dataset_id] = diff
    return out


def test_updates_and_duplicates_reached_silver(curated_incrementally):
    customers = curated_incrementally.incremental["silver/customers"]
    cities = pc.value_counts(customers.column("customer_city")).to_pylist()
    counts = {c["values"]: c["counts"] for c in cities}
    assert counts.get("third city") == 40
    # The second batch's update of the same keys was itself overwritten where the third one
    # updated them again, and survives elsewhere.
    assert 0 < counts.get("second city", 0) <= 40
    orders = curated_incrementally.incremental["silver/orders"]
    assert orders.num_rows == len(set(orders.column("order_id").to_pylist()))
