"""The Dagster UI with one process per identity: `mlsec ui` run as root on the embedded default.

``dagster dev`` would run everything as root: its code servers load the three code locations
(``mlsec_platform/locations``) in processes that could read every identity's secret_id, and
their run workers would too. Here `mlsec ui` starts the processes itself, each as its
identity's OS user (``stack/os_users.py``):

    code server ingestion   mlsec-connector     `dagster api grpc` on a Unix socket
    code server curation    mlsec-pipeline        "
    code server lifecycle   mlsec-lifecycle       "
    webserver, daemon       mlsec-orchestrator  against a workspace of those three sockets

Dagster's default run launcher asks the location's code server to start each run, and the
server starts it as its own child: a run executes as its location's identity, never as root
nor as the webserver's user. Sensors and schedules are evaluated by the code servers too.

A code server answers anyone who can connect, and will start a run of its identity for them,
so its socket is reachable by the orchestrator's user and its own alone: the socket's folder
(0710, group ``mlsec-orchestrator``) admits the webserver, the daemon and the run workers of
every location, and the socket itself (owner ``mlsec-orchestrator``, group the location's
own, 0660) only the orchestrator and the location. A TCP port would admit every local user.

This process stays root, starts nothing else and reads no credential; it stops every process
it started (and what they started) when it gets SIGTERM or SIGINT, or when one of them ends.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psutil
import yaml

from mlsec_platform.errors import ConfigurationError
from mlsec_platform.locations import LOCATIONS
from mlsec_platform.ops.services import serving
from mlsec_platform.settings import PlatformSettings
from mlsec_platform.stack.orchestrator import orchestrator_environment, project_root
from mlsec_platform.stack.os_users import os_user, popen_options, user_name

Echo = Callable[[str], None]

#: The code locations and the identity each runs as.
LOCATION_IDENTITIES = {name: location.identity for name, location in LOCATIONS.items()}
#: The identity of the webserver and the daemon: they open the Dagster instance, nothing more.
ORCHESTRATOR = "orchestrator"
#: Variables a root shell may hold that would hand its credentials to every identity.
AMBIENT_CREDENTIALS = (
    "VAULT_TOKEN",
    "BAO_TOKEN",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "PGPASSWORD",
)
#: How long the code servers may take to load their definitions on a busy machine (s).
LOAD_TIMEOUT = 300.0
#: How long a process may take to stop before it is killed (s).
STOP_TIMEOUT = 30.0


@dataclass
class Child:
    """A process `mlsec ui` started and watches."""

    name: str
    identity: str
    process: subprocess.Popen


def serve_ui_separated(settings: PlatformSettings, host: str, port: int, echo: Echo) -> None:
    """Code servers, webserver and daemon, each as its identity's OS user, until SIGTERM or
    SIGINT (or until one of them ends, which ends the others)."""
    # Started in the background by a script, this process may have SIGINT ignored, and its
    # children would inherit that: Dagster maps SIGTERM to SIGINT's handler, so they would
    # ignore both and only SIGKILL would stop them. With a handler here, they start with the
    # default, and this process answers SIGINT too.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    env = _environment(settings)
    url = f"http://{host}:{port}"
    folder = Path(tempfile.mkdtemp(prefix="mlsec-ui-"))  # short: a socket path has 107 bytes
    children: list[Child] = []
    try:
        # `serving` records the UI (this process) for `mlsec status`; SIGTERM ends the block.
        with serving(settings, "ui", url, host, port):
            folder.chmod(0o711)  # passable, not listable
            sockets = {name: _socket_path(folder, name) for name in LOCATION_IDENTITIES}
            for name, socket in sockets.items():
                command = ["-m", "dagster", "api", "grpc", "--module-name",
                           f"mlsec_platform.locations.{name}", "--location-name", name,
                           "--socket", str(socket)]  # fmt: skip
                identity = LOCATION_IDENTITIES[name]
                children.append(_start(settings, f"code server {name}", identity, command, env))
            _await_sockets(children, sockets)
            workspace = _write_workspace(folder, sockets)
            webserver = ["-m", "dagster_webserver", "-w", str(workspace), "-h", host, "-p",
                         str(port)]  # fmt: skip
            children.append(_start(settings, "webserver", ORCHESTRATOR, webserver, env))
            daemon = ["-m", "dagster._daemon", "run", "-w", str(workspace)]
            children.append(_start(settings, "daemon", ORCHESTRATOR, daemon, env))
            echo(f"Dagster UI on {url} (one process per identity; Ctrl-C to stop)")
            _watch(children)
    finally:
        # A second SIGTERM or Ctrl-C must not cut the clean-up short (STOP_TIMEOUT bounds it):
        # it would leave processes running and the sockets' folder behind.
        for number in (signal.SIGTERM, signal.SIGINT):
            signal.signal(number, signal.SIG_IGN)
        stop_all(children)
        shutil.rmtree(folder, ignore_errors=True)


def _environment(settings: PlatformSettings) -> dict[str, str]:
    """This process's environment without ambient credentials, naming the instance."""
    env = {k: v for k, v in os.environ.items() if k not in AMBIENT_CREDENTIALS}
    return {**env, **orchestrator_environment(settings), "PYTHONUNBUFFERED": "1"}


def _socket_path(folder: Path, location: str) -> Path:
    """``<folder>/<location>/grpc.sock``: its folder is the location's user's to create the
    socket in, and passable by the orchestrator's group alone."""
    place = folder / location
    place.mkdir()
    os.chown(place, os_user(LOCATION_IDENTITIES[location]).uid, os_user(ORCHESTRATOR).gid)
    place.chmod(0o710)
    return place / "grpc.sock"


def _start(
    settings: PlatformSettings, name: str, identity: str, args: list[str], env: dict
) -> Child:
    """``python args`` as ``identity``'s OS user, with ``env``."""
    process = subprocess.Popen(  # noqa: S603 - our own interpreter, fixed arguments
        [sys.executable, *args],
        cwd=project_root(),
        # The Dagster instance's local folders are shared by the orchestrator's group.
        umask=0o007,
        **popen_options(settings, identity, env),
    )
    return Child(name, identity, process)


def _await_sockets(children: list[Child], sockets: dict[str, Path]) -> None:
    """Until every code server listens, then open its socket to the orchestrator's user: until
    then the socket is its creator's alone (umask 007, the location's own group)."""
    orchestrator = os_user(ORCHESTRATOR).uid
    waiting = dict(sockets)
    deadline = time.monotonic() + LOAD_TIMEOUT
    while waiting:
        _check_alive(children)
        if time.monotonic() > deadline:
            raise ConfigurationError(
                f"the code servers of {', '.join(waiting)} did not listen within "
                f"{LOAD_TIMEOUT:.0f} s (their errors are above)"
            )
        for name, socket in list(waiting.items()):
            if socket.is_socket():
                _open_socket(socket, orchestrator, os_user(LOCATION_IDENTITIES[name]).gid)
                del waiting[name]
        time.sleep(0.2)


def _open_socket(path: Path, owner: int, group: int) -> None:
    """Give the socket at ``path`` to ``owner`` and ``group`` (0660). Its folder is the code
    server's: whatever is there now is changed by a handle on it, never by its name again,
    and only if it is a socket, so a link put there cannot turn root on another file."""
    handle = os.open(path, os.O_PATH | os.O_NOFOLLOW)
    try:
        if not stat.S_ISSOCK(os.fstat(handle).st_mode):
            raise ConfigurationError(f"{path} is not the code server's socket: refused")
        # chown and chmod of an O_PATH handle go through its /proc entry (no fchmod on it).
        os.chown(f"/proc/self/fd/{handle}", owner, group)
        os.chmod(f"/proc/self/fd/{handle}", 0o660)
    finally:
        os.close(handle)


def _write_workspace(folder: Path, sockets: dict[str, Path]) -> Path:
    entries = [
        {"grpc_server": {"socket": str(socket), "location_name": name}}
        for name, socket in sockets.items()
    ]
    workspace = folder / "workspace.yaml"
    workspace.write_text(yaml.safe_dump({"load_from": entries}))
    workspace.chmod(0o644)
    return workspace


def _watch(children: list[Child]) -> None:
    while True:
        _check_alive(children)
        time.sleep(1)


def _check_alive(children: list[Child]) -> None:
    for child in children:
        code = child.process.poll()
        if code is not None:
            raise ConfigurationError(
                f"the Dagster {child.name} ({user_name(child.identity)}) ended with exit code "
                f"{code} (its errors are above); every other process of the UI is stopped"
            )


def stop_all(children: list[Child]) -> None:
    """Stop ``children`` and everything they started (run workers included): SIGINT, which
    each Dagster process answers by shutting down cleanly, then SIGKILL for what is left."""
    tree: list[psutil.Process] = []
    for child in children:
        try:
            tree += [psutil.Process(child.process.pid)]
            tree += tree[-1].children(recursive=True)
        except psutil.NoSuchProcess:
            continue
    for child in reversed(children):  # the webserver and the daemon before the code servers
        if child.process.poll() is None:
            child.process.send_signal(signal.SIGINT)
    _, alive = psutil.wait_procs(tree, timeout=STOP_TIMEOUT)
    for process in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()
    psutil.wait_procs(alive, timeout=STOP_TIMEOUT)
    for child in children:
        child.process.poll()  # reap
