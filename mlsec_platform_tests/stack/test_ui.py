"""`mlsec ui`: webserver and daemon on the Postgres instance; a run launched from it succeeds."""

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import requests

from mlsec_platform.stack.orchestrator import project_root
from mlsec_platform.stack.ports import PortAllocator
from mlsec_platform_tests.stack.webserver import (
    code_locations,
    run_to_the_end,
    serving,
    wait_until_answering,
)


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
    # The UI's daemon also runs the session stack's sensors and automation, whose runs may hold
    # the queue's four slots for minutes on a loaded machine: the run waits its turn.
    _, status = run_to_the_end(ui_port, "reference_data", timeout=900)
    assert status == "SUCCESS"


def test_each_identity_is_a_code_location_of_its_own(ui_port):
    """workspace.yaml: one code location (one code server process) per writer identity."""
    assert code_locations(ui_port) == dict.fromkeys(
        ("ingestion", "curation", "lifecycle"), "RepositoryLocation"
    )


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


def test_sigterm_to_mlsec_ui_stops_every_process_it_started(supervisor, settings):
    """A service manager stops `mlsec ui` with SIGTERM to its pid alone: nothing may outlive it
    (the webserver, daemon and code server would keep the port and the database connections)."""
    mlsec = Path(sys.executable).parent / "mlsec"
    port = PortAllocator().take()
    ui = subprocess.Popen(
        [str(mlsec), "ui", "--port", str(port)],
        cwd=project_root(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # only for the clean-up below: the signal goes to the pid
    )
    try:
        wait_until_answering(ui, port)
        started = psutil.Process(ui.pid).children(recursive=True)
        assert len(started) >= 2, started  # webserver and daemon at least
        ui.send_signal(signal.SIGTERM)
        assert ui.wait(60) is not None
        _, alive = psutil.wait_procs(started, timeout=30)
        assert alive == [], f"still running after SIGTERM: {alive}"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(ui.pid, signal.SIGKILL)
