"""A stack of its own on which Raw grows by three batches, curated incrementally, then rebuilt;
on DuckDB (``incremental_stack``) and on the Spark engine (``spark_incremental_stack``).

Its own (state folder, servers): its runs append to Raw and move every curated table's version,
which the session stack's tests pin. ``incremental_stack`` curates a first Raw snapshot, then
two more batches, each with new keys, updates to keys already curated, and rows sent again
unchanged (duplicates across batches), each curated by the `curated` job as it runs by default
(incrementally); it keeps every curated table as those runs left it, then runs the job with the
full-rebuild tag over the same Raw and keeps the tables again. Tests that talk to this stack
request ``on_incremental_stack``, which points the process's settings at it for that test.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import dagster as dg
import pyarrow as pa
import pytest

from mlsec_platform.defs.raw import files as file_connector
from mlsec_platform.storage.incremental import FULL_REBUILD_TAG
from mlsec_platform.storage.raw_writer import Lineage, commit_raw_batch
from mlsec_platform_tests.helpers import OwnStack, environment, stack_of_its_own
from mlsec_platform_tests.spark_stack import CURATED, read_table, run_job

ORDERS = 2_000
SEED = 41


@dataclass
class IncrementalStack:
    resources: dict
    #: One result per run: the first (full), then two incremental ones.
    runs: list[dg.ExecuteInJobResult]
    #: dataset id -> the table as the incremental runs left it, and as the full rebuild made it.
    incremental: dict[str, pa.Table]
    full_tables: dict[str, pa.Table]
    full: dg.ExecuteInJobResult
    env: dict[str, str]
    instance: dg.DagsterInstance
    #: The order-status online store as the incremental runs left it (upserted by entity).
    online: list[tuple] = field(default_factory=list)
    #: Warehouse table -> its rows as the incremental runs left them, and after the rebuild.
    warehouse: dict[str, list[tuple]] = field(default_factory=dict)
    warehouse_full: dict[str, list[tuple]] = field(default_factory=dict)
    #: The engine every run above ran on.
    engine: str = "duckdb"
    #: On the Spark engine: the tables DuckDB's full rebuild of the same Raw makes afterwards
    #: (the same vault, so the same tokens).
    duckdb_tables: dict[str, pa.Table] | None = None
    #: On the Spark engine: two more batches after that, curated incrementally on Spark (over
    #: DuckDB's tables) and then on DuckDB (over Spark's), and DuckDB's full rebuild after them.
    alternated: Alternated | None = None


@dataclass
class Alternated:
    runs: list[dg.ExecuteInJobResult]
    tables: dict[str, pa.Table]
    rebuilt: dict[str, pa.Table]


def commit(resources: dict, source: str, table: pa.Table, batch: str) -> None:
    digest = hashlib.sha256(batch.encode()).hexdigest()
    lineage = Lineage(
        source,
        file_connector.CONNECTOR,
        file_connector.CONNECTOR_VERSION,
        batch,
        datetime.now(UTC).isoformat(),
        digest,
    )
    commit_raw_batch(resources["lake_connector"], table, lineage, run_id=None)


def changed(table: pa.Table, column: str, value) -> pa.Table:
    """``table`` with ``column`` set to ``value`` (an update of those keys)."""
    index = table.schema.get_field_index(column)
    return table.set_column(index, column, pa.array([value] * table.num_rows, pa.string()))


def next_batch(resources: dict, first, tag: str, seed: int) -> None:
    """New keys (a generated data set of their own), updates to the first batch's keys and
    rows of it sent again as they were."""
    from mlsec_platform.sample_data.olist import generate
    from mlsec_platform_tests.curated_data import seed_raw

    seed_raw(resources, generate(seed=seed, orders=ORDERS // 4), tag)
    tables = first.tables
    customers = tables["olist_customers"].slice(seed % 50, 40)
    commit(resources, "olist_customers", changed(customers, "customer_city", f"{tag} city"), tag)
    items = tables["olist_order_items"].slice(seed % 70, 60)
    commit(resources, "olist_order_items", changed(items, "price", "12.34"), tag)
    reviews = tables["olist_order_reviews"].slice(seed % 30, 30)
    commit(resources, "olist_order_reviews", changed(reviews, "review_score", "1"), tag)
    orders = tables["olist_orders"].slice(0, 100)  # the same rows again: a duplicate batch
    commit(resources, "olist_orders", orders, f"{tag}-again")


@pytest.fixture(scope="session")
def incremental_stack(tmp_path_factory) -> Iterator[IncrementalStack]:
    with stack_of_its_own(tmp_path_factory, "mlsec-incremental") as stack:
        with environment(stack.env):
            made = curate_three_batches_then_rebuild(stack, "duckdb")
        yield made


@pytest.fixture(scope="session")
def spark_incremental_stack(tmp_path_factory) -> Iterator[IncrementalStack]:
    """The same scenario with every run on the Spark engine (the stack's Sail), then DuckDB's
    full rebuild of the same Raw."""
    with stack_of_its_own(tmp_path_factory, "mlsec-spark-incremental") as stack:
        with environment(stack.env):
            stack.supervisor.ensure_sail()
            made = curate_three_batches_then_rebuild(stack, "spark")
        yield made


def curate_three_batches_then_rebuild(stack: OwnStack, engine: str) -> IncrementalStack:
    """The first Raw snapshot and two more batches, each curated as the job runs by default,
    then the full rebuild, all on ``engine`` (see the module)."""
    from mlsec_platform.defs.resources import build_resources
    from mlsec_platform.sample_data.olist import generate
    from mlsec_platform_tests.curated_data import seed_raw

    resources = build_resources(stack.settings)
    instance = dg.DagsterInstance.ephemeral()
    first = generate(seed=SEED, orders=ORDERS)
    seed_raw(resources, first, "first")
    runs = [run_job(engine, resources, instance)]
    for tag, seed in (("second", SEED + 1), ("third", SEED + 2)):
        next_batch(resources, first, tag, seed)
        runs.append(run_job(engine, resources, instance))
    for run in runs:
        assert run.success, [e.message for e in run.all_events if e.is_failure]
    incremental = {i: read_table(resources, i) for i in CURATED}
    online, warehouse = read_online(resources), read_warehouse(resources)
    full = run_job(engine, resources, instance, tags={FULL_REBUILD_TAG: "true"})
    assert full.success, [e.message for e in full.all_events if e.is_failure]
    full_tables = {i: read_table(resources, i) for i in CURATED}
    made = IncrementalStack(
        resources, runs, incremental, full_tables, full, stack.env, instance, online, warehouse
    )
    made.engine, made.warehouse_full = engine, read_warehouse(resources)
    if engine != "duckdb":
        duckdb = run_job("duckdb", resources, instance, tags={FULL_REBUILD_TAG: "true"})
        assert duckdb.success, [e.message for e in duckdb.all_events if e.is_failure]
        made.duckdb_tables = {i: read_table(resources, i) for i in CURATED}
        made.alternated = alternate_engines(resources, instance, first, engine)
    return made


def alternate_engines(resources: dict, instance, first, engine: str) -> Alternated:
    """Two more batches: the first curated on ``engine`` over the tables DuckDB wrote last, the
    second on DuckDB over the ones ``engine`` wrote; then DuckDB's full rebuild."""
    runs = []
    for tag, seed, on in (("fourth", SEED + 3, engine), ("fifth", SEED + 4, "duckdb")):
        next_batch(resources, first, tag, seed)
        runs.append(run_job(on, resources, instance))
        assert runs[-1].success, [e.message for e in runs[-1].all_events if e.is_failure]
    tables = {i: read_table(resources, i) for i in CURATED}
    rebuilt = run_job("duckdb", resources, instance, tags={FULL_REBUILD_TAG: "true"})
    assert rebuilt.success, [e.message for e in rebuilt.all_events if e.is_failure]
    return Alternated(runs, tables, {i: read_table(resources, i) for i in CURATED})


#: The order-status features compared between the online store and the offline table.
ONLINE_COLUMNS = ["customer_token", "last_order_status", "orders", "orders_open", "events"]


def read_online(resources: dict) -> list[tuple]:
    columns = ", ".join(ONLINE_COLUMNS)
    with resources["warehouse"].connection() as conn, conn.cursor() as cur:
        cur.execute(f"SELECT {columns} FROM features.customer_order_status_online")  # noqa: S608
        return sorted(cur.fetchall())


#: Warehouse tables that take a newer version as its changed keys' rows.
CHANGED_BY_KEY = ["gold.fact_order_item", "features.customer_rfm_online"]


def read_warehouse(resources: dict) -> dict[str, list[tuple]]:
    """Every row of :data:`CHANGED_BY_KEY`'s tables, sorted (a heap has no order of its own),
    without the time each feature row was materialized (a rebuild's is later)."""
    out = {}
    with resources["warehouse"].connection() as conn, conn.cursor() as cur:
        for table in CHANGED_BY_KEY:
            cur.execute(f"SELECT * FROM {table}")  # noqa: S608 - names of the list above
            kept = [i for i, c in enumerate(cur.description) if c.name != "materialized_at"]
            rows = [tuple(row[i] for i in kept) for row in cur.fetchall()]
            out[table] = sorted(rows, key=repr)
    return out


@pytest.fixture
def on_incremental_stack(incremental_stack: IncrementalStack) -> Iterator[IncrementalStack]:
    """The incremental stack, with this process's settings pointing at it during the test."""
    with environment(incremental_stack.env):
        yield incremental_stack
