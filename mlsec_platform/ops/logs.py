"""`mlsec logs`: where each embedded server writes its log, and the end of one.

The logs live in several places (each server's file under ``<state>/logs``, PostgreSQL's own
folder, OpenBao's audit device, each Dagster step's compute logs); this command names them
all so nobody has to know the layout. Lines are printed as the servers wrote them: OpenBao's
audit device holds HMACs of secrets, never secrets.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from mlsec_platform.ops.refusals import NotApplicable, UnknownName
from mlsec_platform.ops.servers import local_supervisor
from mlsec_platform.settings import PlatformSettings
from mlsec_platform.stack.servers.openbao import OpenBaoServer

Echo = Callable[[str], None]
MAX_LINES = 10_000
#: Bytes read from the end of a file per step while looking for the last lines.
_BLOCK = 64 * 1024


class UnknownLog(UnknownName):
    """No log of that name."""


def log_files(settings: PlatformSettings) -> dict[str, Path]:
    """Each log of the embedded stack by name: the servers', OpenBao's audit device, and the
    folder of Dagster's compute logs (one file per run step)."""
    servers = local_supervisor(settings, lambda _: None).servers
    files = {name: server.log_file for name, server in servers.items()}
    openbao = servers.get(OpenBaoServer.name)
    if isinstance(openbao, OpenBaoServer):
        files["openbao-audit"] = openbao.audit_log
    # Staged here while a step runs; kept in the lake's dagster bucket (stack/compute_logs.py).
    files["dagster"] = settings.dagster_home / "compute_logs"
    return files


def list_logs(settings: PlatformSettings, echo: Echo) -> dict[str, Path]:
    files = log_files(settings)
    for name, path in files.items():
        if path.is_dir():
            count = sum(1 for p in path.rglob("*") if p.is_file())
            echo(f"{name:<14} {path}/  ({count} files)")
        elif path.exists():
            stat = path.stat()
            when = datetime.fromtimestamp(stat.st_mtime).strftime("%Y-%m-%d %H:%M:%S")
            echo(f"{name:<14} {path}  ({stat.st_size} bytes, {when})")
        else:
            echo(f"{name:<14} {path}  (not written yet)")
    echo("`mlsec logs NAME` prints the end of one")
    return files


def last_lines(path: Path, count: int) -> list[str]:
    """The last ``count`` lines of ``path``, read from its end (a log may be large)."""
    with open(path, "rb") as fh:
        fh.seek(0, os.SEEK_END)
        end = position = fh.tell()
        data = b""
        while position > 0 and data.count(b"\n") <= count:
            position = max(0, position - _BLOCK)
            fh.seek(position)
            data = fh.read(end - position)
    lines = data.decode("utf-8", errors="replace").splitlines()
    return lines[-count:] if count else []


def show_log(settings: PlatformSettings, name: str, count: int, echo: Echo) -> list[str]:
    """Print the last ``count`` lines of log ``name``."""
    if not 1 <= count <= MAX_LINES:
        raise NotApplicable(f"--lines {count}: from 1 to {MAX_LINES}")
    files = log_files(settings)
    if name not in files:
        raise UnknownLog(f"no log {name!r}; known: {', '.join(files)}")
    path = files[name]
    if path.is_dir():
        raise NotApplicable(
            f"{name} is a folder of per-step logs: {path}; the UI shows them by run"
        )
    if not path.exists():
        raise NotApplicable(f"{name} has written no log yet ({path})")
    lines = last_lines(path, count)
    for line in lines:
        echo(line)
    return lines
