"""The real gateway in a process of its own (`mlsec gateway`), as it runs in production, for
tests that measure that process (its memory) or hold its connections."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from mlsec_platform.serving.client import ClientTls
from mlsec_platform.stack.ports import PortAllocator


@contextmanager
def running_gateway(
    env: dict[str, str], tls: ClientTls, stderr: Path | None = None
) -> Iterator[tuple[subprocess.Popen, str, int]]:
    """`mlsec gateway` on a free port with ``env`` over this process's environment; yields
    the process, its URL and its port once it answers (over mTLS: ``tls`` is the client's).
    Its standard error (the request lines) goes to ``stderr`` when given."""
    with running_service("gateway", env, tls, stderr) as running:
        yield running


@contextmanager
def running_service(
    command: str, env: dict[str, str], tls: ClientTls, stderr: Path | None = None
) -> Iterator[tuple[subprocess.Popen, str, int]]:
    """As :func:`running_gateway`, for `mlsec gateway` or `mlsec broker` (``command``)."""
    port = PortAllocator().take()
    mlsec = Path(sys.executable).parent / "mlsec"
    err = stderr.open("wb") if stderr is not None else subprocess.DEVNULL
    proc = subprocess.Popen(
        [str(mlsec), command, "--port", str(port)],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=err,
    )
    url = f"https://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                if httpx.get(f"{url}/health", timeout=1, verify=tls.ssl_context()).is_success:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        else:
            pytest.fail(f"`mlsec {command}` did not start")
        yield proc, url, port
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:  # connections it still waits for
            proc.kill()
            proc.wait(30)
        if stderr is not None:
            err.close()
