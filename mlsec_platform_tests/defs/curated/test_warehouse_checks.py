"""Warehouse checks run on their own: each table holds the rows of the Delta version its load
recorded; a row deleted outside a load makes the check fail, and the next load repairs it."""

from __future__ import annotations

import dagster as dg
import psycopg2

from mlsec_platform.defs.warehouse.assets import TARGETS, warehouse_loads
from mlsec_platform.defs.warehouse.checks import CHECK_NAME, rows_check

SELLER = dg.AssetCheckKey(dg.AssetKey(["warehouse", "dim_seller"]), CHECK_NAME)
ONLINE = dg.AssetCheckKey(dg.AssetKey(["warehouse", "customer_rfm_online"]), CHECK_NAME)


def _run(curated, selection: dg.AssetSelection) -> dg.ExecuteInProcessResult:
    definitions = dg.Definitions(
        assets=[warehouse_loads],
        asset_checks=[rows_check(t) for t in TARGETS],
        jobs=[dg.define_asset_job("run", selection=selection)],
        resources={
            "lake_pipeline": curated.resources["lake_pipeline"],
            "warehouse": curated.resources["warehouse"],
        },
    )
    result = definitions.resolve_job_def("run").execute_in_process(instance=curated.instance)
    assert result.success
    return result


def _checks(curated, *keys: dg.AssetCheckKey) -> dict:
    result = _run(curated, dg.AssetSelection.checks(*keys))
    assert result.get_asset_materialization_events() == []  # the checks alone ran
    return {e.asset_check_key: e for e in result.get_asset_check_evaluations()}


def test_a_table_changed_outside_a_load_fails_its_check(curated, superuser_dsn) -> None:
    before = _checks(curated, SELLER, ONLINE)
    for key in (SELLER, ONLINE):
        meta = before[key].metadata
        assert before[key].passed, meta
        assert meta["rows_in_postgres"].value == meta["rows_in_delta_version"].value > 0
    with psycopg2.connect(**superuser_dsn) as conn, conn.cursor() as cur:
        cur.execute(
            "DELETE FROM gold.dim_seller WHERE ctid IN (SELECT ctid FROM gold.dim_seller LIMIT 1)"
        )
    conn.close()
    after = _checks(curated, SELLER)[SELLER]
    assert not after.passed
    meta = after.metadata
    assert meta["rows_in_postgres"].value == meta["rows_in_delta_version"].value - 1
    _run(curated, dg.AssetSelection.assets(SELLER.asset_key).without_checks())  # a new load
    assert _checks(curated, SELLER)[SELLER].passed
