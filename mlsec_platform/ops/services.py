"""The platform's own services (Dagster UI, broker, gateway, pipeline metrics, dashboard) as
`mlsec status` shows them.

Each `mlsec ui`, `mlsec broker`, `mlsec gateway`, `mlsec metrics` and `mlsec dashboard`
records its process id and address in ``<state_dir>/services/<name>/record.json`` when it
starts (and removes it when it stops, except the UI when it becomes `dagster dev` in the same
process: run by a user other than root, ``ops/serve.py``). A service is ``up`` when that
process is alive and its port accepts connections; a record whose process is gone is ``down``.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psutil

from mlsec_platform.settings import PlatformSettings
from mlsec_platform.stack.os_users import become

#: The services `mlsec status` lists, in this order.
SERVICES = ("ui", "broker", "gateway", "metrics", "dashboard")
#: How long a port may take to accept a connection before the service counts as down (s).
CONNECT_TIMEOUT = 0.5


@dataclass(frozen=True)
class ServiceState:
    name: str
    up: bool
    url: str | None
    pid: int | None


def _record_file(settings: PlatformSettings, name: str) -> Path:
    # A folder per service: a service that runs as its identity's OS user owns its folder, so
    # it can replace and remove its own record and no other.
    return settings.root / "services" / name / "record.json"


def record_service(settings: PlatformSettings, name: str, url: str, host: str, port: int) -> Path:
    """Note that this process serves ``name`` at ``url`` (atomically: a reader never sees
    half a record)."""
    path = _record_file(settings, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"pid": os.getpid(), "url": url, "host": host, "port": port}
    partial = path.with_suffix(f".{os.getpid()}.tmp")
    partial.write_text(json.dumps(record))
    partial.replace(path)
    return path


@contextmanager
def serving(
    settings: PlatformSettings,
    name: str,
    url: str,
    host: str,
    port: int,
    identity: str | None = None,
) -> Iterator[None]:
    """The record of ``name`` for the length of the block (removed if still this process's).

    With ``identity``, this process runs as that identity's OS user from here on
    (``stack/os_users.py``; run as root on the embedded default), and its record is its own.

    A SIGTERM ends the block like Ctrl-C: uvicorn stops gracefully on it and then raises it
    again with the handler found at its start, which Python's default would answer by ending
    the process on the spot, record and all."""
    if identity is not None:
        become(settings, identity, give=_record_file(settings, name).parent)
    path = record_service(settings, name, url, host, port)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        yield
    finally:
        try:
            if json.loads(path.read_text()).get("pid") == os.getpid():
                path.unlink()
        except (OSError, ValueError):
            pass


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def service_states(settings: PlatformSettings) -> list[ServiceState]:
    """Each service's state, from its record."""
    states = []
    for name in SERVICES:
        try:
            record = json.loads(_record_file(settings, name).read_text())
        except (OSError, ValueError):
            states.append(ServiceState(name, False, None, None))
            continue
        pid = record.get("pid")
        alive = isinstance(pid, int) and psutil.pid_exists(pid)
        up = alive and _accepts(record.get("host", "127.0.0.1"), record.get("port"))
        states.append(ServiceState(name, up, record.get("url"), pid if alive else None))
    return states


def _accepts(host: str, port: object) -> bool:
    if not isinstance(port, int):
        return False
    if host in ("0.0.0.0", "::", ""):  # noqa: S104 - listening everywhere: ask on loopback
        host = "127.0.0.1"
    try:
        with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT):
            return True
    except OSError:
        return False
