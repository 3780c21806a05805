"""The curated job on the Spark engine (Sail on the embedded stack) against DuckDB.

Both engines curate the same Raw snapshot on a stack of their own (``spark_stack``); every
table the Spark run commits must equal what DuckDB committed: values, types, row counts and
tokens. Run alone: ``pytest mlsec_platform_tests/defs/curated/test_spark_engine.py``.
"""

from __future__ import annotations

import pyarrow as pa
import pytest

from mlsec_platform.catalog.datasets import CATALOG
from mlsec_platform_tests.spark_stack import CURATED, read_table

#: Columns that say when a row was made, not what it holds.
RUN_TIME_COLUMNS = {"materialized_at"}
ON_ENGINE = [i for i in CURATED if i != "gold/dim_date"]


def comparable(dataset_id: str, table: pa.Table) -> pa.Table:
    spec = CATALOG[dataset_id]
    keep = [c for c in table.column_names if c not in RUN_TIME_COLUMNS]
    return table.select(keep).sort_by([(k, "ascending") for k in spec.key or keep])


def differences(a: pa.Table, b: pa.Table) -> list[str]:
    """Per differing column, its first differing row (a readable failure instead of False)."""
    if a.schema != b.schema or a.num_rows != b.num_rows:
        return [f"schema/rows differ:\n{a.schema}\n{a.num_rows} vs\n{b.schema}\n{b.num_rows}"]
    out = []
    for name in a.column_names:
        x, y = a.column(name).to_pylist(), b.column(name).to_pylist()
        diff = [i for i, (p, q) in enumerate(zip(x, y, strict=True)) if p != q]
        if diff:
            out.append(f"{name}: {len(diff)} rows, e.g. {x[diff[0]]!r} != {y[diff[0]]!r}")
    return out


def test_the_spark_run_succeeds_and_says_it_ran_on_spark(on_spark_stack):
    result = on_spark_stack.spark_result
    assert result.success, [e.message for e in result.all_events if e.is_failure]
    engines = {
        e.asset_key.to_user_string(): e.materialization.metadata["engine"].value
        for e in result.get_asset_materialization_events()
        if "engine" in e.materialization.metadata
    }
    assert set(ON_ENGINE) <= set(engines)
    assert set(engines.values()) == {"spark"}


@pytest.mark.parametrize("dataset_id", CURATED)
def test_both_engines_commit_identical_tables(on_spark_stack, dataset_id):
    duck = comparable(dataset_id, on_spark_stack.duckdb[dataset_id])
    spark = comparable(dataset_id, read_table(on_spark_stack.resources, dataset_id))
    assert duck.num_rows > 0
    assert spark.schema == duck.schema
    assert spark.equals(duck), differences(spark, duck)
