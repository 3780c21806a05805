"""`mlsec ingest` and `mlsec curate` (and the demo, which runs both) started as root run the
connector's and the pipeline's runs in a process of that identity's OS user (``ops/pipeline.py``,
``stack/os_users.py``), whose environment no other identity reads (issue 15)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import psutil
import pytest

from mlsec_platform.ops.pipeline import _instance
from mlsec_platform.stack.os_users import os_user
from mlsec_platform_tests.stack.test_os_users import probe

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0,
    reason="identities run as OS users of their own only when the stack runs as root",
)


def _worker_uid(settings, run_id: str) -> int:
    """The uid of the process that ran ``run_id``: its step logs' folder is that process's."""
    return (settings.dagster_home / "compute_logs" / run_id).stat().st_uid


def test_the_demo_runs_ingest_as_the_connector_and_curate_as_the_pipeline(
    demo_output, settings
) -> None:
    with _instance(settings) as instance:
        runs = instance.get_run_records(dg.RunsFilter(statuses=[dg.DagsterRunStatus.SUCCESS]))
    curated = [r.dagster_run.run_id for r in runs if r.dagster_run.job_name == "curated"]
    ingested = [r.dagster_run.run_id for r in runs if r.dagster_run.job_name.startswith("ingest_")]
    assert curated and ingested
    assert {_worker_uid(settings, run) for run in curated} == {os_user("pipeline").uid}
    assert {_worker_uid(settings, run) for run in ingested} == {os_user("connector").uid}


def test_no_other_identity_reads_a_running_curation(demo_output, settings) -> None:
    mlsec = Path(sys.executable).parent / "mlsec"
    with subprocess.Popen([str(mlsec), "curate"], stdout=subprocess.DEVNULL) as command:
        worker = None
        for _ in range(300):
            children = psutil.Process(command.pid).children()
            worker = next((c for c in children if c.uids().real == os_user("pipeline").uid), None)
            if worker is not None:
                break
            time.sleep(0.1)
        assert worker is not None, "no run worker of the pipeline's user"
        seen = {who: probe(who, "--environ", str(worker.pid)) for who in ("broker", "gateway")}
        assert command.wait(600) == 0
    assert {who: s["environ"] for who, s in seen.items()} == {
        who: {str(worker.pid): "denied"} for who in ("broker", "gateway")
    }
