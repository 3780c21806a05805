"""A throwaway embedded stack for a benchmark run (the same supervisor the product uses)."""

from __future__ import annotations

import os
import signal
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

from mlsec_platform.settings import PlatformSettings, get_settings
from mlsec_platform.stack.bootstrap import bootstrap
from mlsec_platform.stack.supervisor import Supervisor


@contextmanager
def benchmark_stack():
    """Start servers on free ports in a temporary folder, bootstrap, yield settings, stop.

    SIGTERM (e.g. from `timeout`) becomes a normal exit, so the servers are stopped too.
    """
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    with tempfile.TemporaryDirectory(prefix="mlsec-bench-") as state:
        os.environ.update(
            {
                "MLSEC_STATE_DIR": state,
                "MLSEC_PREFER_DEFAULT_PORTS": "false",
                "MLSEC_PROFILE": "local",
            }
        )
        settings: PlatformSettings = get_settings()
        supervisor = Supervisor(settings)
        try:
            endpoints = supervisor.up()
            bootstrap(settings, endpoints)
            yield settings
        finally:
            supervisor.down()


@contextmanager
def bench_client(settings: PlatformSettings, subject: str = "bench"):
    """A client certificate of the platform CA for the benchmark's requests (the broker and
    the gateway serve mTLS only): (ClientTls, its PEM to bind tokens to), for the block."""
    from mlsec_platform.ops.certs import ephemeral_client

    with ephemeral_client(settings, subject, ttl_seconds=12 * 3600) as client:
        yield client


def report(name: str, real: float, baseline: float, unit: str, target: str) -> None:
    print(f"\n{name}")
    print(f"  real path : {real:>12,.0f} {unit}")
    print(f"  baseline  : {baseline:>12,.0f} {unit}")
    print(f"  ratio     : {real / baseline:>12.2f} (real / baseline)")
    print(f"  target    : {target}")


__all__ = ["Path", "bench_client", "benchmark_stack", "report"]
