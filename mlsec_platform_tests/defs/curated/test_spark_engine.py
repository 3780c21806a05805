"""The curated job on the Spark engine (Sail on the embedded stack) against DuckDB.

Both engines curate the same Raw snapshot on a stack of their own (``spark_stack``): Spark
first, minting every token on the engine, then DuckDB. Every table must be the same: values,
types, row counts and tokens. Run alone (about a minute):
``pytest mlsec_platform_tests/defs/curated/test_spark_engine.py``.
"""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from deltalake import DeltaTable

from mlsec_platform.catalog.datasets import CATALOG
from mlsec_platform.catalog.sources import FILE_SOURCES
from mlsec_platform.cli import main
from mlsec_platform.defs.raw.files import CONNECTOR, CONNECTOR_VERSION
from mlsec_platform.settings import Zone
from mlsec_platform.storage.engine_tables import STAGED_DIR
from mlsec_platform.storage.raw_writer import Lineage, commit_raw_batch
from mlsec_platform_tests.helpers import environment, table_differences
from mlsec_platform_tests.spark_stack import CURATED, read_table, run_job

#: Columns that say when a row was made, not what it holds.
RUN_TIME_COLUMNS = {"materialized_at"}
#: Made in this process on both engines: a calendar, from two values the engine computes.
ON_ENGINE = [i for i in CURATED if i != "gold/dim_date"]


def comparable(dataset_id: str, table: pa.Table) -> pa.Table:
    spec = CATALOG[dataset_id]
    keep = [c for c in table.column_names if c not in RUN_TIME_COLUMNS]
    return table.select(keep).sort_by([(k, "ascending") for k in spec.key or keep])


def materializations(result: dg.ExecuteInJobResult) -> dict[str, dict]:
    return {
        e.asset_key.to_user_string(): {k: v.value for k, v in e.materialization.metadata.items()}
        for e in result.get_asset_materialization_events()
    }


def test_the_spark_run_ran_every_transform_on_spark_and_minted_there(on_spark_stack):
    assert on_spark_stack.duckdb_result.success
    made = materializations(on_spark_stack.spark_result)
    assert {i: made[i]["engine"] for i in ON_ENGINE} == dict.fromkeys(ON_ENGINE, "spark")
    # The vault was empty: every person's identifiers were minted by the Spark run.
    assert made["silver/customers"]["tokens/customers/minted"] > 0
    assert (
        made["features/customer_rfm"]["entities"] == made["gold/dim_customer"]["dagster/row_count"]
    )
    assert materializations(on_spark_stack.duckdb_result)["gold/fact_order_item"]["engine"] == (
        "duckdb"
    )


def assert_identical(stack, dataset_id: str) -> None:
    with environment(stack.env):
        duck = comparable(dataset_id, read_table(stack.resources, dataset_id))
    spark = comparable(dataset_id, stack.spark[dataset_id])
    assert duck.num_rows > 0
    assert spark.schema == duck.schema
    assert spark.equals(duck), table_differences(spark, duck)


@pytest.mark.parametrize("dataset_id", CURATED)
def test_both_engines_commit_identical_tables(on_spark_stack, dataset_id):
    assert_identical(on_spark_stack, dataset_id)


@pytest.mark.slow
def test_both_engines_commit_identical_tables_at_100k_orders(spark_stack_100k):
    assert spark_stack_100k.spark_result.success and spark_stack_100k.duckdb_result.success
    for dataset_id in CURATED:
        assert_identical(spark_stack_100k, dataset_id)


def staged_dirs(lake, zone: Zone, name: str) -> set[str]:
    bucket, prefix = lake.bucket(zone), f"{name}/{STAGED_DIR}/"
    pages = lake.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return {o["Key"][len(prefix) :].split("/")[0] for p in pages for o in p.get("Contents", [])}


def version(lake, zone: Zone, name: str) -> int:
    return DeltaTable(lake.table_uri(zone, name), storage_options=lake.storage_options()).version()


def test_a_failing_batch_on_spark_is_not_committed_and_is_quarantined(on_spark_stack):
    stack, lake = on_spark_stack, on_spark_stack.resources["lake_pipeline"]
    source = "olist_order_items"
    row = {**_first_row(stack, source), "price": "-10.00"}
    row["order_id"] = f"bad{datetime.now(UTC).timestamp():.0f}"[:32]
    batch = "spark-gate-test"
    schema = FILE_SOURCES[source].raw_schema()
    commit_raw_batch(
        stack.resources["lake_connector"],
        pa.Table.from_pylist([row], schema=schema),
        Lineage(
            source, CONNECTOR, CONNECTOR_VERSION, batch, datetime.now(UTC).isoformat(), "2" * 64
        ),
        run_id=None,
    )
    before = version(lake, Zone.SILVER, "order_items"), version(lake, Zone.GOLD, "fact_order_item")
    staged_before = staged_dirs(lake, Zone.SILVER, "order_items")
    selection = [dg.AssetKey(["silver", "order_items"]), dg.AssetKey(["gold", "fact_order_item"])]

    result = run_job("spark", stack.resources, stack.instance, asset_selection=selection)

    assert not result.success
    # One check per rule family: the negative price fails `ranges` alone, on this one row.
    failed = [c for c in result.get_asset_check_evaluations() if not c.passed]
    assert [c.check_name for c in failed] == ["ranges"]
    (check,) = failed
    assert check.metadata["raw_batches"].value == [batch]
    assert check.metadata["failures"].value == 1
    assert result.get_asset_materialization_events() == []  # nor anything downstream
    after = version(lake, Zone.SILVER, "order_items"), version(lake, Zone.GOLD, "fact_order_item")
    assert after == before
    # The engine's staged files are gone; only those of committed versions stay.
    assert staged_dirs(lake, Zone.SILVER, "order_items") == staged_before
    prefix = check.metadata["quarantine"].value.split("/", 1)[1]
    s3, bucket = lake.client(), lake.bucket(Zone.QUARANTINE)
    payload = s3.get_object(Bucket=bucket, Key=f"{prefix}/payload")["Body"].read()
    rows = pq.read_table(io.BytesIO(payload))
    assert rows.column("order_id").to_pylist() == [row["order_id"]]
    reason = json.loads(s3.get_object(Bucket=bucket, Key=f"{prefix}/reason.json")["Body"].read())
    assert {"column": "price", "check": "greater_than_or_equal_to(0)", "failures": "1"} in (
        reason["checks"]
    )

    # Excluded by the operator, the batch stays out of the engine's read; the next run passes.
    excluded = CliRunner().invoke(
        main, ["quarantine", "exclude", source, batch, "--reason", "negative test batch"]
    )
    assert excluded.exit_code == 0, excluded.output
    again = run_job("spark", stack.resources, stack.instance, asset_selection=selection)
    assert again.success
    assert version(lake, Zone.SILVER, "order_items") == before[0] + 1


def _first_row(stack, source: str) -> dict:
    table = read_raw(stack, source)
    return {k: v for k, v in table.slice(0, 1).to_pylist()[0].items() if not k.startswith("_")}


def read_raw(stack, source: str) -> pa.Table:
    lake = stack.resources["lake_pipeline"]
    return pa.table(
        DeltaTable(lake.table_uri(Zone.RAW, source), storage_options=lake.storage_options())
        .to_pyarrow_dataset()
        .to_table()
    )
