"""Raw -> Silver -> Gold -> warehouse -> features, governed, against an ungoverned script.

Real path: the `curated` Dagster job as the platform runs it (Vault logins and leases, reads as
`pipeline`, tokenization of every direct identifier, a pandera gate on every table, one Delta
commit per asset with lineage, warehouse loads in one transaction each with RLS, audit events).
Baseline, in the same process run on the same Raw snapshot and the same servers: the same
transforms (``mlsec_platform.transforms``) on DuckDB, with admin S3 keys and the Postgres
superuser, writing the same Delta tables (to a `baseline/` prefix) and the same Postgres
tables with the same lookup keys (schema `baseline`), with no tokenization, gates, RLS,
lineage or audit.

    .venv/bin/python bench/pipeline.py --orders 1000000 [--executor multiprocess] [--engine spark]

``--engine spark`` also starts Sail (the embedded Spark Connect engine) and runs the job on it
and on DuckDB, each from the same state: the token vault is emptied before each run, so each
engine mints every token (a first load), and reports both beside the baseline, per asset, with
the peak memory of this process (the run process: the job runs in it) and of Sail's during
each run. ``--engine spark --spark-only`` runs only the Spark job, in a fresh (spawned) run
process, and prints that process's own peak memory (``bench/_fresh_run.py``): no baseline, no
DuckDB run, nothing else held in it.

The default runs the job in process (steps one after another, each using both cores). With
``--executor multiprocess`` steps run in forked processes two at a time, as a run launched
from the UI does; on 2 cores that measured slower (101.9 s against 70.8 s in process), since
every step process logs in, leases credentials and competes for the same cores.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import sys
import time
from datetime import UTC, date, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import dagster as dg  # noqa: E402
import psycopg2  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.compute as pc  # noqa: E402
import pyarrow.csv as pacsv  # noqa: E402
from _stack import benchmark_stack  # noqa: E402
from deltalake import DeltaTable, write_deltalake  # noqa: E402

from mlsec_platform.catalog.datasets import dataset  # noqa: E402
from mlsec_platform.catalog.sources import EVENT_DOMAINS  # noqa: E402
from mlsec_platform.defs.reference.assets import _BR_STATES, BR_STATES_SCHEMA  # noqa: E402
from mlsec_platform.defs.resources import build_resources  # noqa: E402
from mlsec_platform.defs.warehouse.assets import TARGETS  # noqa: E402
from mlsec_platform.privacy.deidentify import PrivacyPlan  # noqa: E402
from mlsec_platform.sample_data.events import order_status_events  # noqa: E402
from mlsec_platform.sample_data.olist import generate  # noqa: E402
from mlsec_platform.settings import Zone  # noqa: E402
from mlsec_platform.stack.supervisor import Supervisor  # noqa: E402
from mlsec_platform.storage.raw_writer import (  # noqa: E402
    Lineage,
    commit_raw_batch,
    with_stream_columns,
)
from mlsec_platform.transforms import features, gold, silver  # noqa: E402
from mlsec_platform.transforms.duck import run_sql  # noqa: E402

SILVER_SOURCES = {
    "customers": "olist_customers",
    "orders": "olist_orders",
    "order_items": "olist_order_items",
    "order_payments": "olist_order_payments",
    "order_reviews": "olist_order_reviews",
    "product_categories": "product_category_name_translation",
    "sellers": "olist_sellers",
    "geolocation": "olist_geolocation",
    "order_events": "events_order_status",
}
#: Postgres keys of the warehouse tables, as the platform builds them.
WAREHOUSE_KEYS = {t.name: t.index for t in TARGETS if t.index}


def seed_raw(resources: dict, orders: int) -> dict[str, int]:
    """Raw as the connectors leave it (one batch per source), written as `connector`."""
    dataset = generate(seed=11, orders=orders)
    tables = dict(dataset.tables)
    contract = EVENT_DOMAINS["order_status"]
    now = datetime.now(UTC).isoformat()
    tables[contract.source] = with_stream_columns(
        pa.Table.from_pylist(list(order_status_events(dataset)), schema=contract.raw_schema()),
        now,
    )
    rows = {}
    for source, table in tables.items():
        digest = hashlib.sha256(source.encode()).hexdigest()
        commit_raw_batch(
            resources["lake_connector"],
            table,
            Lineage(source, "bench", "1", f"bench-{source}", now, digest),
            run_id=None,
        )
        rows[source] = table.num_rows
    return rows


def cpu_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine (Linux), to show how much of both cores a
    stage kept busy; (0, 0) where /proc/stat does not exist."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    except OSError:
        return 0, 0
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def busy_share(before: tuple[int, int], after: tuple[int, int]) -> str:
    total = after[1] - before[1]
    return f"{(after[0] - before[0]) / total:.0%} of all cores busy" if total else "n/a"


class Clock:
    def __init__(self) -> None:
        self.laps: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps[name] = now - self._last
        self._last = now


class Baseline:
    """The same transforms and outputs, ungoverned."""

    def __init__(self, supervisor: Supervisor, settings) -> None:
        admin = supervisor.seaweedfs.admin_credentials()
        self.options = {
            "AWS_ENDPOINT_URL": supervisor.seaweedfs.endpoint,
            "AWS_REGION": settings.s3_region,
            "AWS_ACCESS_KEY_ID": admin["access_key"],
            "AWS_SECRET_ACCESS_KEY": admin["secret_key"],
            "AWS_S3_ADDRESSING_STYLE": "path",
            # The same TLS as the governed path: the baseline pays for it too.
            "certificate_path": str(settings.server_ca("s3")),
        }
        self.settings = settings
        self.dsn = supervisor.postgres.superuser_dsn(settings.warehouse_db)

    def read(self, zone: Zone, name: str) -> pa.Table:
        uri = f"s3://{self.settings.bucket(zone)}/{name}"
        return pa.table(DeltaTable(uri, storage_options=self.options).to_pyarrow_table())

    def write(self, zone: Zone, name: str, table: pa.Table) -> None:
        uri = f"s3://{self.settings.bucket(zone)}/baseline/{name}"
        write_deltalake(uri, table, mode="overwrite", storage_options=self.options)

    def load(self, conn, name: str, table: pa.Table) -> None:
        with conn.cursor() as cur:
            cur.execute(f"DROP TABLE IF EXISTS baseline.{name}")
            columns = ", ".join(f'"{f.name}" {_pg(f.type)}' for f in table.schema)
            cur.execute(f"CREATE TABLE baseline.{name} ({columns})")
            buffer = io.BytesIO()
            pacsv.write_csv(table, buffer, pacsv.WriteOptions(include_header=False))
            buffer.seek(0)
            cur.copy_expert(f"COPY baseline.{name} FROM STDIN WITH (FORMAT csv)", buffer)
            # The same lookup key as the platform's table (the online store is keyed by
            # entity), built the same way.
            if key := WAREHOUSE_KEYS.get(name):
                cur.execute("SET LOCAL maintenance_work_mem = '256MB'")
                cur.execute(f"ALTER TABLE baseline.{name} ADD PRIMARY KEY ({', '.join(key)})")
        conn.commit()

    def empty_token_vault(self) -> int:
        """Delete every object of the token vault (the tokens bucket), so the next run starts
        from a first load and mints every token; returns how many objects went."""
        import boto3
        from botocore.config import Config

        s3 = boto3.client(
            "s3",
            endpoint_url=self.options["AWS_ENDPOINT_URL"],
            region_name=self.options["AWS_REGION"],
            aws_access_key_id=self.options["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=self.options["AWS_SECRET_ACCESS_KEY"],
            config=Config(s3={"addressing_style": "path"}),
            verify=self.options["certificate_path"],
        )
        bucket, deleted = self.settings.bucket(Zone.TOKENS), 0
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
            if keys:
                s3.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})
                deleted += len(keys)
        return deleted

    def run(self) -> None:
        clock = Clock()
        raw = {n: self.read(Zone.RAW, s) for n, s in SILVER_SOURCES.items()}
        raw["products"] = self.read(Zone.RAW, "olist_products")
        out = {}
        transforms = silver.SILVER_TRANSFORMS
        for name in SILVER_SOURCES:
            out[name] = transforms[f"silver/{name}"](raw[name])
        out["products"] = transforms["silver/products"](
            raw["products"], product_categories=out["product_categories"]
        )
        # The ungoverned baseline generalises as Silver does (the catalog says how), but does
        # not tokenize.
        out["customers"] = PrivacyPlan.of(dataset("silver/customers")).generalise(out["customers"])
        out["customers"] = out["customers"].rename_columns(
            [
                {"customer_unique_id": "customer_token"}.get(c, c)
                for c in out["customers"].column_names
            ]
        )
        clock.lap("read raw + silver transforms")
        out["br_states"] = pa.Table.from_pylist(
            [dict(zip(BR_STATES_SCHEMA.names, r, strict=True)) for r in _BR_STATES],
            schema=BR_STATES_SCHEMA,
        )
        for name, table in out.items():
            self.write(Zone.SILVER, name, table)
        clock.lap("silver writes")
        gold_tables = {}
        for name, (query, inputs) in gold.GOLD_QUERIES.items():
            tables = {i: gold_tables.get(i, out.get(i)) for i in inputs}
            gold_tables[name] = run_sql(query(gold.DUCKDB), **tables)
        bounds = pc.min_max(out["orders"].column("purchased_at"))
        gold_tables["dim_date"] = gold.dim_date(
            date(bounds["min"].as_py().year, 1, 1), date(bounds["max"].as_py().year, 12, 31)
        )
        clock.lap("gold transforms")
        for name, table in gold_tables.items():
            self.write(Zone.GOLD, name, table)
        clock.lap("gold writes")
        rfm = run_sql(
            gold.customer_rfm(gold.DUCKDB), fact_order_item=gold_tables["fact_order_item"]
        )
        self.write(Zone.FEATURES, "customer_rfm", rfm)
        online = run_sql(
            "SELECT * FROM t QUALIFY row_number() OVER "
            "(PARTITION BY customer_token ORDER BY event_timestamp DESC) = 1",
            t=rfm,
        )
        # The order-status group, built whole from the events as a full run builds it; its
        # online store is the table itself (one row per person).
        status = run_sql(
            features.customer_order_status(gold.DUCKDB),
            order_events=out["order_events"],
            customers=out["customers"],
        )
        self.write(Zone.FEATURES, "customer_order_status", status)
        clock.lap("features")
        with psycopg2.connect(**self.dsn) as conn:
            with conn.cursor() as cur:
                cur.execute("CREATE SCHEMA IF NOT EXISTS baseline")
            for name, table in gold_tables.items():
                self.load(conn, name, table)
            self.load(conn, "customer_rfm_online", online)
            self.load(conn, "customer_order_status_online", status)
        conn.close()
        clock.lap("warehouse loads")
        print("baseline stages: " + ", ".join(f"{k} {v:.1f}s" for k, v in clock.laps.items()))


def _pg(type_: pa.DataType) -> str:
    from mlsec_platform.storage.warehouse import pg_type

    return pg_type(pa.string() if pa.types.is_large_string(type_) else type_)


def curated_job() -> dg.JobDefinition:
    """The `curated` job as the code location defines it (for reconstruction in step processes)."""
    from mlsec_platform.definitions import defs

    return defs().resolve_job_def("curated")


class PeakMemory:
    """Peak resident memory of processes, sampled every 50 ms while the block runs."""

    def __init__(self, **pids: int) -> None:
        import psutil

        self.processes = {name: psutil.Process(pid) for name, pid in pids.items()}
        self.start = {name: p.memory_info().rss for name, p in self.processes.items()}
        self.peak = dict(self.start)

    def __enter__(self):
        import threading

        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.05):
            for name, proc in self.processes.items():
                try:
                    self.peak[name] = max(self.peak[name], proc.memory_info().rss)
                except Exception:  # noqa: S112 - a process that ended keeps its peak
                    continue

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def __str__(self) -> str:
        return ", ".join(
            f"peak {k} {v / 2**20:,.0f} MiB (+{(v - self.start[k]) / 2**20:,.0f} over its start)"
            for k, v in self.peak.items()
        )


def run_curated(executor: str):
    """The curated job in-process, or as a launched run does: steps in forked processes."""
    if executor == "in_process":
        return curated_job().execute_in_process(
            instance=dg.DagsterInstance.ephemeral(), raise_on_error=False
        )
    instance = dg.DagsterInstance.local_temp()
    config = {
        "execution": {
            "config": {
                "multiprocess": {
                    "max_concurrent": 2,
                    "start_method": {
                        "forkserver": {"preload_modules": ["mlsec_platform.definitions"]}
                    },
                }
            }
        }
    }
    return dg.execute_job(
        dg.reconstructable(curated_job), instance=instance, run_config=config, raise_on_error=False
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=1_000_000)
    parser.add_argument("--executor", choices=["in_process", "multiprocess"], default="in_process")
    parser.add_argument("--engine", choices=["duckdb", "spark"], default="duckdb")
    parser.add_argument(
        "--spark-only",
        action="store_true",
        help="only the Spark run, in a fresh process: its own peak memory (no baseline)",
    )
    args = parser.parse_args()

    with benchmark_stack() as settings:
        supervisor = Supervisor(settings)
        resources = build_resources(settings)
        started = time.perf_counter()
        rows = seed_raw(resources, args.orders)
        print(
            f"Raw seeded in {time.perf_counter() - started:.1f}s: "
            + ", ".join(f"{k} {v:,}" for k, v in rows.items())
        )

        baseline = Baseline(supervisor, settings)
        if args.spark_only:
            spark_in_fresh_process(supervisor, baseline, args.orders)
            return
        started, cpu = time.perf_counter(), cpu_ticks()
        baseline.run()
        base = time.perf_counter() - started
        print(f"baseline (ungoverned DuckDB script): {base:.1f}s, {busy_share(cpu, cpu_ticks())}")

        runs = {}
        engines = ["spark", "duckdb"] if args.engine == "spark" else ["duckdb"]
        if args.engine == "spark":
            supervisor.ensure_sail()
        for engine in engines:
            # The same state for each engine: a first load, every token minted.
            emptied = baseline.empty_token_vault()
            print(f"\n[{engine}] token vault emptied ({emptied} objects)")
            runs[engine] = governed_run(args.executor, engine, supervisor)

        print(f"\nRaw -> features, {args.orders:,} orders")
        print_steps(runs)
        for engine, (real, memory, _) in runs.items():
            print(f"  real path, {engine:<6} : {real:8.1f} s  ({memory})")
        print(f"  baseline           : {base:8.1f} s")
        for engine, (real, _, _) in runs.items():
            print(f"  ratio, {engine:<6}      : {real / base:8.2f} (real / baseline)")
        if "spark" in runs:
            print(f"  spark / duckdb     : {runs['spark'][0] / runs['duckdb'][0]:8.2f}")
        print("  target    : at most 1.5x the baseline, and under 120 s; spark within 1.5x duckdb")


def spark_in_fresh_process(supervisor: Supervisor, baseline: Baseline, orders: int) -> None:
    """The Spark run alone, in a spawned run process (``bench/_fresh_run.py``), the vault
    empty (every token minted): its peak memory and Sail's, with nothing else in it."""
    from _fresh_run import run_in_fresh_process

    supervisor.ensure_sail()
    print(f"[spark] token vault emptied ({baseline.empty_token_vault()} objects)")
    started, cpu = time.perf_counter(), cpu_ticks()
    with PeakMemory(sail=supervisor.sail.process().pid) as sail:
        run = run_in_fresh_process("spark")
    real = time.perf_counter() - started
    if not run.success:
        raise SystemExit(f"the curated job failed on spark: {run.failures[:3]}")
    print(f"\nRaw -> features on spark, {orders:,} orders, the run in a fresh process")
    print_steps({"spark": (real, sail, run.steps)})
    busy = busy_share(cpu, cpu_ticks())
    print(f"  real path, spark : {real:8.1f} s ({run.seconds:.1f} s in the job), {busy}")
    print(f"  {run}")
    print(f"  sail: {sail}")
    # Steps in the order they ran, each with the peak so far: where it jumps, that step set it.
    rising, last = [], run.start_rss
    for step, peak in sorted(run.step_peaks.items(), key=lambda kv: kv[1]):
        if peak - last >= 16 * 2**20:
            rising.append(f"{step} {peak / 2**20:,.0f} MiB")
            last = peak
    print("  the run process's peak rose during: " + ", ".join(rising))


def print_steps(runs: dict[str, tuple[float, PeakMemory, dict[str, float]]]) -> None:
    """Each step's seconds on each engine, slowest first (by the first engine)."""
    engines = list(runs)
    steps = sorted(
        {k for _, _, s in runs.values() for k in s}, key=lambda k: -runs[engines[0]][2].get(k, 0)
    )
    print("  step".ljust(58) + "".join(f"{e:>10}" for e in engines))
    for step in steps:
        cells = "".join(f"{runs[e][2].get(step, float('nan')):10.1f}" for e in engines)
        print(f"  {step:<56}{cells}")


def governed_run(
    executor: str, engine: str, supervisor: Supervisor
) -> tuple[float, PeakMemory, dict[str, float]]:
    """The curated job on ``engine``, timed, with the run process's (and Sail's) peak memory."""
    import os

    os.environ["MLSEC_ENGINE"] = engine
    pids = {"run": os.getpid()}
    if engine == "spark":
        pids["sail"] = supervisor.sail.process().pid
    started, cpu = time.perf_counter(), cpu_ticks()
    with PeakMemory(**pids) as memory:
        result = run_curated(executor)
    real = time.perf_counter() - started
    real_cpu = busy_share(cpu, cpu_ticks())
    if not result.success:
        raise SystemExit(f"the curated job failed on {engine}")
    steps = {}
    for event in result.all_events:
        if event.event_type_value == "STEP_SUCCESS":
            steps[event.step_key] = event.event_specific_data.duration_ms / 1000
    slowest = sorted(steps.items(), key=lambda kv: -kv[1])[:8]
    print(f"[{engine}] slowest steps: " + ", ".join(f"{k} {v:.1f}s" for k, v in slowest))
    for event in result.get_asset_materialization_events():
        meta = event.event_specific_data.materialization.metadata
        if "seconds" in meta or "transform_seconds" in meta:
            detail = meta.get("seconds") or meta.get("transform_seconds")
            print(f"  {event.asset_key.to_user_string():<32} {detail.value}")
    gates = {}  # each rule family's check carries its gate's seconds: one line per gate
    for check in result.get_asset_check_evaluations():
        if "seconds" in check.metadata and check.metadata["seconds"].value > 0.5:
            gates[check.asset_key.to_user_string()] = check.metadata["seconds"].value
    for asset, seconds in gates.items():
        print(f"  gate {asset:<27} {seconds}s")
    print(f"governed (curated job, {engine}): {real:.1f}s, {real_cpu}, {memory}")
    return real, memory, steps


if __name__ == "__main__":
    main()
