"""A stack of its own with Sail, and one Raw snapshot curated by both engines.

Its own (state folder, servers, Sail): the Spark runs commit new versions of every curated
table, which would move the versions the session stack's tests and its Dagster instance expect.

``spark_stack`` seeds Raw once (``SPARK_ORDERS`` generated orders), runs the real `curated`
job with ``MLSEC_ENGINE=spark`` first (so the engine mints every token), keeps every curated
table as that run committed it, then runs the same job on DuckDB on the same Raw snapshot. Tests that talk to this stack request
``on_spark_stack``, which points the process's settings at it for that test only.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import dagster as dg
import pyarrow as pa
import pytest
from deltalake import DeltaTable

from mlsec_platform.catalog.datasets import CATALOG
from mlsec_platform.settings import PlatformSettings, Zone
from mlsec_platform_tests.helpers import environment, stack_of_its_own

SPARK_ORDERS = 10_000
SEED = 31
#: Every table the curated job commits to the lake (the warehouse loads go to Postgres).
CURATED = sorted(i for i, s in CATALOG.items() if s.zone in (Zone.SILVER, Zone.GOLD, Zone.FEATURES))


@dataclass
class SparkStack:
    settings: PlatformSettings
    env: dict[str, str]
    supervisor: object
    resources: dict
    instance: dg.DagsterInstance
    batches: dict[str, str]
    #: dataset id -> the table as the Spark run committed it.
    spark: dict[str, pa.Table]
    spark_result: dg.ExecuteInJobResult
    duckdb_result: dg.ExecuteInJobResult


def read_table(resources: dict, dataset_id: str, version: int | None = None) -> pa.Table:
    spec = CATALOG[dataset_id]
    lake = resources["lake_pipeline"]
    uri = lake.table_uri(spec.zone, spec.name)
    table = DeltaTable(uri, storage_options=lake.storage_options(), version=version)
    return pa.table(table.to_pyarrow_dataset().to_table())


def run_job(engine: str, resources: dict, instance, **kwargs) -> dg.ExecuteInJobResult:
    from mlsec_platform_tests.curated_data import run_curated

    with environment({"MLSEC_ENGINE": engine}):
        return run_curated(resources, instance, **kwargs)


def curated_by_both(tmp_path_factory, orders: int) -> Iterator[SparkStack]:
    """A stack of its own with Sail, ``orders`` generated orders in Raw, curated by the Spark
    engine and then by DuckDB (see the module)."""
    from mlsec_platform.defs.resources import build_resources
    from mlsec_platform.sample_data.olist import generate
    from mlsec_platform_tests.curated_data import seed_raw

    with stack_of_its_own(tmp_path_factory, "mlsec-spark") as stack:
        with environment(stack.env):
            stack.supervisor.ensure_sail()
            resources = build_resources(stack.settings)
            batches = seed_raw(resources, generate(seed=SEED, orders=orders), "spark")
            instance = dg.DagsterInstance.ephemeral()
            spark_result = run_job("spark", resources, instance)
            assert spark_result.success, [
                e.message for e in spark_result.all_events if e.is_failure
            ]
            spark = {i: read_table(resources, i) for i in CURATED}
            duckdb_result = run_job("duckdb", resources, instance)
        yield SparkStack(
            stack.settings,
            stack.env,
            stack.supervisor,
            resources,
            instance,
            batches,
            spark,
            spark_result,
            duckdb_result,
        )


@pytest.fixture(scope="session")
def spark_stack(tmp_path_factory) -> Iterator[SparkStack]:
    yield from curated_by_both(tmp_path_factory, SPARK_ORDERS)


@pytest.fixture(scope="session")
def spark_stack_100k(tmp_path_factory) -> Iterator[SparkStack]:
    """The same at 100,000 orders (the ``slow`` parity test)."""
    yield from curated_by_both(tmp_path_factory, 100_000)


@pytest.fixture
def on_spark_stack(spark_stack: SparkStack) -> Iterator[SparkStack]:
    """The spark stack, with this process's settings pointing at it during the test."""
    with environment(spark_stack.env):
        yield spark_stack
