"""`mlsec ui`: webserver and daemon on the Postgres instance; a run launched from it succeeds."""

import os
import sys
import time
from pathlib import Path

import pytest
import requests

from mlsec_platform.stack.orchestrator import project_root
from mlsec_platform_tests.stack.webserver import run_to_the_end, serving


@pytest.fixture(scope="module")
def ui_port(supervisor, settings):
    mlsec = Path(sys.executable).parent / "mlsec"
    with serving(
        lambda port: [str(mlsec), "ui", "--port", str(port)],
        cwd=project_root(),
        env=os.environ.copy(),
    ) as port:
        yield port


def test_a_run_launched_from_the_ui_materializes_with_vault_credentials(ui_port):
    _, status = run_to_the_end(ui_port, "reference_data")
    assert status == "SUCCESS"


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
