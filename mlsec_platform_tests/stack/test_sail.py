"""Sail, the embedded Spark engine, as the supervisor runs it (on the spark stack).

Its environment holds the pipeline's S3 keys and nothing else of this process; in
``local-cluster`` mode a driver and two workers run the curated Gold tables together; a
rotation of the pipeline's keys restarts it with the new ones.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time

import dagster as dg
import psutil

from mlsec_platform.defs.resources import build_resources
from mlsec_platform.ops.s3_keys import rotate_identity_keys
from mlsec_platform.resources.s3_lake import lake_storage_options
from mlsec_platform.settings import get_settings
from mlsec_platform.stack.ports import PortAllocator
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


def test_a_pipeline_key_rotation_restarts_sail_with_the_new_keys_and_it_still_curates(
    on_spark_stack,
):
    """`mlsec rotate s3-keys pipeline` deletes the key Sail holds: the rotation restarts Sail
    with the new key (the old one is nowhere in its environment), and a Silver asset with
    tokens runs on it again, reading Raw and writing its table and the vault through Sail."""
    settings = get_settings()
    sail = Supervisor(settings).sail
    before_pid, before_key = sail.process().pid, sail.held_key()
    old = on_spark_stack.resources["lake_pipeline"].credentials()
    rotated = rotate_identity_keys(settings, ["pipeline"], lambda _: None)
    sail = Supervisor(settings).sail
    proc = psutil.Process(sail.process().pid)
    env = proc.environ()
    assert proc.pid != before_pid and sail.held_key() not in (None, before_key)
    assert env["AWS_ACCESS_KEY_ID"] == rotated["pipeline"] != old.access_key_id
    assert not {old.access_key_id, old.secret_access_key} & set(env.values())
    # The stack's resources held the old key (re-read every few minutes): new ones, for this
    # run and the tests after it.
    on_spark_stack.resources.update(build_resources(settings))
    customers = dg.AssetKey(["silver", "customers"])
    result = run_job(
        "spark", on_spark_stack.resources, on_spark_stack.instance, asset_selection=[customers]
    )
    assert result.success, [e.message for e in result.all_events if e.is_failure]
    [event] = result.get_asset_materialization_events()
    meta = event.event_specific_data.materialization.metadata
    assert meta["engine"].value == "spark"


def test_a_remote_spark_connect_endpoint_not_ours_runs_the_assets(on_spark_stack, tmp_path):
    """``MLSEC_SPARK_REMOTE`` points the engine at an endpoint the platform does not run: here
    a second Sail started by hand, as an operator starts a cluster, holding the pipeline's keys
    in its own environment. The embedded Sail is stopped meanwhile, so only the remote serves."""
    settings = get_settings()
    keys = on_spark_stack.resources["lake_pipeline"].credentials()
    options = lake_storage_options(settings.endpoints().s3_endpoint, settings.s3_region, keys)
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), **options}
    env["SSL_CERT_FILE"] = options["certificate_path"]
    port = PortAllocator().take()
    command = [sys.executable, "-m", "pysail", "spark", "server", "--ip", "127.0.0.1"]
    remote = subprocess.Popen(
        [*command, "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    embedded = Supervisor(settings).sail
    embedded.stop()
    try:
        deadline = time.monotonic() + 30
        while not _listening(port):
            assert remote.poll() is None and time.monotonic() < deadline, "Sail did not start"
            time.sleep(0.2)
        with environment({"MLSEC_SPARK_REMOTE": f"sc://127.0.0.1:{port}"}):
            customers = dg.AssetKey(["silver", "customers"])
            result = run_job(
                "spark",
                on_spark_stack.resources,
                on_spark_stack.instance,
                asset_selection=[customers],
            )
        assert result.success, [e.message for e in result.all_events if e.is_failure]
        [event] = result.get_asset_materialization_events()
        assert event.event_specific_data.materialization.metadata["engine"].value == "spark"
        assert not embedded.is_running() and remote.poll() is None  # only the remote served
    finally:
        remote.terminate()
        remote.wait(30)
        Supervisor(get_settings()).ensure_sail()


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False
