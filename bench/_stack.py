"""A throwaway embedded stack for a benchmark run (the same supervisor the product uses)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import httpx

from mlsec_platform.gateway.services import AUDIENCE
from mlsec_platform.identities.tokens import issue_token
from mlsec_platform.settings import PlatformSettings, get_settings
from mlsec_platform.stack.bootstrap import BootstrapCredentials, bootstrap
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


@contextmanager
def gateway_process(port: int, tls):
    """`mlsec gateway` in its own process, as uploads reach it in production (HTTPS: ``tls``
    is the benchmark's client certificate); yields its URL and the process."""
    mlsec = Path(sys.executable).parent / "mlsec"
    proc = subprocess.Popen(
        [str(mlsec), "gateway", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"https://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if httpx.get(f"{url}/health", timeout=1, verify=tls.ssl_context()).is_success:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        yield url, proc
    finally:
        proc.terminate()
        proc.wait(30)


def gateway_token(settings: PlatformSettings, scope: str, certificate: str) -> str:
    """A token of the gateway's audience granting ``scope``, issued as the operator and bound
    to ``certificate`` (the benchmark's client certificate, PEM)."""
    vault = BootstrapCredentials.load(settings).vault(settings.endpoints())
    return issue_token(
        vault,
        subject="bench",
        audience=AUDIENCE,
        ttl_seconds=3600,
        certificate=certificate,
        claims={"scope": [scope]},
    )


def analyst_token(settings: PlatformSettings, certificate: str) -> str:
    """A broker token of a Brazil-wide analyst of confidential clearance (purpose analytics),
    issued as the operator and bound to ``certificate``: who the broker benchmarks read as."""
    from broker_api.identity import issue_broker_token

    vault = BootstrapCredentials.load(settings).vault(settings.endpoints())
    return issue_broker_token(
        vault,
        subject="bench",
        groups=["analysts"],
        project="olist-br",
        purpose="analytics",
        clearance="confidential",
        ttl_seconds=3600,
        certificate=certificate,
    )


__all__ = [
    "Path",
    "analyst_token",
    "bench_client",
    "benchmark_stack",
    "gateway_process",
    "gateway_token",
    "report",
]
