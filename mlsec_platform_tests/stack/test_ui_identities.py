"""`mlsec ui` run as root: each code location's server, and the runs it starts, as its identity's
OS user; the webserver and the daemon as the orchestrator's (``ops/dagster_ui.py``, issue 15)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
from click.testing import CliRunner

from mlsec_platform.cli import main
from mlsec_platform.ops.dagster_ui import LOCATION_IDENTITIES
from mlsec_platform.stack.orchestrator import project_root
from mlsec_platform.stack.os_users import os_user
from mlsec_platform.stack.ports import PortAllocator
from mlsec_platform_tests.stack.webserver import (
    code_locations,
    run_to_the_end,
    wait_until_answering,
)

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0,
    reason="identities run as OS users of their own only when the stack runs as root",
)

MLSEC = Path(sys.executable).parent / "mlsec"


@dataclass
class Ui:
    process: subprocess.Popen
    port: int

    def child(self, marker: str) -> psutil.Process:
        """The one process `mlsec ui` started whose command line holds ``marker``."""
        found = [p for p in psutil.Process(self.process.pid).children() if marker in p.cmdline()]
        assert len(found) == 1, (marker, found)
        return found[0]

    def code_server(self, location: str) -> psutil.Process:
        return self.child(f"mlsec_platform.locations.{location}")


@contextlib.contextmanager
def running_ui(ignoring_sigint: bool = False) -> Iterator[Ui]:
    """`mlsec ui` on a free port; ``ignoring_sigint``: started as a script's background job
    is, with SIGINT ignored."""
    port = PortAllocator().take()
    process = subprocess.Popen(
        [str(MLSEC), "ui", "--port", str(port)],
        cwd=project_root(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # only for the clean-up below: signals go to the pid
        preexec_fn=_ignore_sigint if ignoring_sigint else None,  # noqa: PLW1509 - no threads
    )
    try:
        wait_until_answering(process, port, timeout=600)
        yield Ui(process, port)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(90)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def ui(supervisor, settings) -> Iterator[Ui]:
    with running_ui() as running:
        yield running


def _groups(process: psutil.Process) -> set[int]:
    """The supplementary groups of ``process``."""
    status = Path(f"/proc/{process.pid}/status").read_text()
    line = next(line for line in status.splitlines() if line.startswith("Groups:"))
    return {int(gid) for gid in line.split()[1:]}


def _as_process(process: psutil.Process, *command: str) -> subprocess.CompletedProcess:
    """Run ``command`` (this interpreter's) with the credentials ``process`` runs with."""
    uids, gids = process.uids(), process.gids()
    return subprocess.run(
        [sys.executable, *command],
        user=uids.real,
        group=gids.real,
        extra_groups=sorted(_groups(process)),
        env={**os.environ, "HOME": "/nonexistent"},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_each_process_runs_as_its_identity(ui) -> None:
    for location, identity in LOCATION_IDENTITIES.items():
        server, user = ui.code_server(location), os_user(identity)
        assert set(server.uids()) == {user.uid}, location
        assert set(server.gids()) == {user.gid}, location
        assert _groups(server) == set(user.extra_gids), location  # the orchestrator's
    servers = {ui.code_server(location).uids().real for location in LOCATION_IDENTITIES}
    assert len(servers) == len(LOCATION_IDENTITIES)
    orchestrator = os_user("orchestrator")
    for marker in ("dagster_webserver", "dagster._daemon"):
        assert set(ui.child(marker).uids()) == {orchestrator.uid}, marker
        assert _groups(ui.child(marker)) == set(), marker
    # Nothing under `mlsec ui` but itself runs as root.
    tree = psutil.Process(ui.process.pid).children(recursive=True)
    assert tree and all(p.uids().real != 0 for p in tree), tree


@pytest.mark.parametrize(
    ("location", "other"), [("ingestion", "curation"), ("curation", "ingestion")]
)
def test_a_code_server_reads_its_own_secret_id_only(ui, location, other) -> None:
    own, theirs = LOCATION_IDENTITIES[location], LOCATION_IDENTITIES[other]
    done = _as_process(
        ui.code_server(location), "-m", "mlsec_platform_tests.stack.identity_probe", own, theirs
    )
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout.splitlines()[-1])
    assert seen["secret_id"] == {own: "read", theirs: "denied"}
    assert seen["login"] == {own: "logged in", theirs: "VaultAccessDenied"}


CONNECT = "import socket, sys; socket.socket(socket.AF_UNIX).connect(sys.argv[1]); print('ok')"


def test_a_code_servers_socket_admits_the_orchestrator_and_its_location_only(ui) -> None:
    """Whoever reaches a code server can start its runs: the other locations' users (and
    every other identity) cannot connect to it."""
    curation = ui.code_server("curation")
    path = curation.cmdline()[curation.cmdline().index("--socket") + 1]
    webserver = ui.child("dagster_webserver")
    assert _as_process(webserver, "-c", CONNECT, path).stdout.strip() == "ok"
    for intruder in ("ingestion", "lifecycle"):
        refused = _as_process(ui.code_server(intruder), "-c", CONNECT, path)
        assert "PermissionError" in refused.stderr, intruder
    # A local user of no identity at all.
    nobody = subprocess.run(
        [sys.executable, "-c", CONNECT, path], user="nobody", capture_output=True, text=True
    )
    assert "PermissionError" in nobody.stderr, nobody.stderr[-2000:]


def test_the_webserver_serves_every_location(ui) -> None:
    assert code_locations(ui.port) == dict.fromkeys(LOCATION_IDENTITIES, "RepositoryLocation")


def test_mlsec_status_lists_the_ui(ui) -> None:
    status = CliRunner().invoke(main, ["status"]).output.splitlines()
    line = next(line for line in status if line.startswith("ui "))
    assert line.split() == ["ui", "up", f"http://127.0.0.1:{ui.port}", f"pid={ui.process.pid}"]


def test_a_run_executes_as_its_locations_identity(ui) -> None:
    """Dagster's run launcher has the location's code server start the run: its worker is the
    server's child, as the server's user (here the pipeline's, which alone reads the
    pipeline's credentials, so the run's success also shows it had them)."""
    server = ui.code_server("curation")
    workers: dict[int, int] = {}
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            for process in server.children(recursive=True):
                with contextlib.suppress(psutil.Error):
                    workers[process.pid] = process.uids().real
            time.sleep(0.1)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        _, status = run_to_the_end(ui.port, "reference_data", timeout=900)
    finally:
        done.set()
        watcher.join()
    assert status == "SUCCESS"
    assert workers, "no run worker was seen under the curation code server"
    assert set(workers.values()) == {os_user("pipeline").uid}


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _ignored_signals(process: psutil.Process) -> set[int]:
    status = Path(f"/proc/{process.pid}/status").read_text()
    mask = int(
        next(line.split()[1] for line in status.splitlines() if line.startswith("SigIgn")), 16
    )
    return {number for number in range(1, 65) if mask >> (number - 1) & 1}


def test_sigterm_to_mlsec_ui_stops_every_process_and_removes_its_sockets(supervisor, settings):
    """Started as a script's background job (SIGINT ignored, which its children would inherit
    and Dagster would extend to SIGTERM), `mlsec ui` still stops every process it started."""
    with running_ui(ignoring_sigint=True) as ui:
        started = psutil.Process(ui.process.pid).children(recursive=True)
        for process in started:
            assert not {signal.SIGINT, signal.SIGTERM} & _ignored_signals(process), process
        sockets = Path(ui.code_server("ingestion").cmdline()[-1]).parent.parent
        assert len(started) >= 5 and sockets.is_dir(), started
        ui.process.send_signal(signal.SIGTERM)
        assert ui.process.wait(90) is not None
        _, alive = psutil.wait_procs(started, timeout=30)
        assert alive == [], f"still running after SIGTERM: {alive}"
        assert not sockets.exists()
        assert not (settings.root / "services" / "ui" / "record.json").exists()
