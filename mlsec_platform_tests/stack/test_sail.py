"""Sail, the embedded Spark engine, as the supervisor runs it (on the spark stack).

Its environment holds the pipeline's S3 keys and nothing else of this process; in
``local-cluster`` mode a driver and two workers run the curated Gold tables together.
"""

from __future__ import annotations

import re

import dagster as dg
import psutil

from mlsec_platform.settings import get_settings
from mlsec_platform.stack.supervisor import Supervisor
from mlsec_platform_tests.helpers import environment
from mlsec_platform_tests.spark_stack import run_job


def test_sail_holds_the_pipelines_keys_and_nothing_else(on_spark_stack):
    sail = Supervisor(get_settings()).sail
    env = psutil.Process(sail.process().pid).environ()
    keys = on_spark_stack.resources["lake_pipeline"].credentials()
    assert env["AWS_ACCESS_KEY_ID"] == keys.access_key_id
    assert {"MLSEC_STATE_DIR", "MLSEC_PROFILE"}.isdisjoint(env)
    assert not any(name.startswith(("VAULT", "BAO", "PG")) for name in env)
    assert sail.held_key() is not None and keys.access_key_id not in sail.key_file.read_text()


def test_local_cluster_runs_tasks_on_two_workers(on_spark_stack):
    cluster = {
        "MLSEC_SAIL_MODE": "local-cluster",
        "MLSEC_SAIL_WORKERS": "2",
        # The engine's log then names the workers and each connection to one.
        "RUST_LOG": "sail_execution=info,hyper_util=debug",
    }
    with environment(cluster):
        supervisor = Supervisor(get_settings())
        supervisor.sail.stop()
        start = supervisor.sail.log_file.stat().st_size
        supervisor.ensure_sail()
    try:
        gold = ["fact_order_item", "dim_customer", "kpi_delivery", "kpi_sales_monthly"]
        selection = [dg.AssetKey(["gold", name]) for name in gold]
        result = run_job(
            "spark", on_spark_stack.resources, on_spark_stack.instance, asset_selection=selection
        )
        assert result.success, [e.message for e in result.all_events if e.is_failure]
        log = supervisor.sail.log_file.read_text()[start:]
        workers = dict(re.findall(r"worker (\d+) is available at 127\.0\.0\.1:(\d+)", log))
        assert sorted(workers) == ["1", "2"]
        # A worker's port is reached only to send it tasks or to fetch what its tasks wrote.
        used = set(re.findall(r"connected to 127\.0\.0\.1:(\d+)", log))
        assert set(workers.values()) <= used, (workers, used)
    finally:
        supervisor.sail.stop()
        Supervisor(get_settings()).ensure_sail()  # back to the default mode for later tests
