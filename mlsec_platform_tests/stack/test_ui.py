"""`mlsec ui`: webserver and daemon on the Postgres instance; a run launched from it succeeds."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from dagster_graphql import DagsterGraphQLClient

from mlsec_platform.stack.ports import PortAllocator


@pytest.fixture(scope="module")
def ui_port(supervisor, settings):
    port = PortAllocator().take()
    mlsec = Path(sys.executable).parent / "mlsec"
    proc = subprocess.Popen(
        [str(mlsec), "ui", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # `dagster dev` runs a process tree: stop it as a group
        env=os.environ.copy(),
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert proc.poll() is None, "mlsec ui exited early"
            try:
                if requests.get(f"http://127.0.0.1:{port}/server_info", timeout=2).ok:
                    break
            except requests.ConnectionError:
                pass
            time.sleep(1)
        else:
            pytest.fail("the Dagster webserver did not answer within 120 s")
        yield port
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def test_a_run_launched_from_the_ui_materializes_with_vault_credentials(ui_port):
    client = DagsterGraphQLClient("127.0.0.1", port_number=ui_port)
    run_id = client.submit_job_execution(
        "reference_data",
        repository_location_name="mlsec_platform",
        repository_name="__repository__",
    )
    deadline = time.monotonic() + 180
    status = client.get_run_status(run_id)
    while status.value not in ("SUCCESS", "FAILURE", "CANCELED") and time.monotonic() < deadline:
        time.sleep(1)
        status = client.get_run_status(run_id)
    assert status.value == "SUCCESS"


def test_the_daemons_are_healthy(ui_port):
    query = "{ instance { daemonHealth { allDaemonStatuses { daemonType healthy } } } }"
    for _ in range(30):
        response = requests.post(
            f"http://127.0.0.1:{ui_port}/graphql", json={"query": query}, timeout=10
        ).json()
        statuses = response["data"]["instance"]["daemonHealth"]["allDaemonStatuses"]
        if statuses and all(s["healthy"] for s in statuses):
            break
        time.sleep(1)
    assert {s["daemonType"] for s in statuses} >= {"SCHEDULER", "SENSOR", "QUEUED_RUN_COORDINATOR"}
    assert all(s["healthy"] for s in statuses), statuses
