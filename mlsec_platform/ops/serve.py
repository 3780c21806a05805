"""The platform's servers in the foreground, for an operator: gateway, broker, Dagster UI.

The gateway and the broker run as their identity's OS user (``stack/os_users.py``): started
as root on the embedded default, they switch user before they read any credential of their
identity. The files the settings name for a service (its metrics scrape credential) are the
operator's, so they are read before the switch, as the user who started the service, and
only what the service keeps of them (a digest) crosses it.

Each runs until Ctrl-C. The gateway and the broker are imported only when served: the broker
package is slow to import.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

from mlsec_platform.ops.services import record_service, serving
from mlsec_platform.settings import PlatformSettings
from mlsec_platform.stack.orchestrator import orchestrator_environment, project_root
from mlsec_platform.stack.os_users import separated

Echo = Callable[[str], None]


def serve_gateway(settings: PlatformSettings, host: str, port: int | None, echo: Echo) -> None:
    """The ingestion gateway as the `gateway` identity (port: the settings' by default)."""
    from mlsec_platform.gateway.server import serve
    from mlsec_platform.serving.scrape import MetricsScrapeCredential

    port = port or settings.gateway_port
    url = f"https://{host}:{port}"
    # Read before the switch of user: the operator's file may be readable by root alone.
    scrape = MetricsScrapeCredential.from_file(settings.metrics_credential_file)
    echo(f"Ingestion gateway on {url} (mTLS; OpenAPI at /docs; Ctrl-C to stop)")
    with serving(settings, "gateway", url, host, port, identity="gateway"):
        serve(settings, host, port, scrape)


def serve_broker(settings: PlatformSettings, host: str, port: int | None, echo: Echo) -> None:
    """The Access Broker as the `broker` identity (port: the settings' by default)."""
    from broker_api.metrics import ScrapeCredential
    from broker_api.server import serve

    port = port or settings.broker_port
    url = f"https://{host}:{port}"
    # Read before the switch of user: the operator's file may be readable by root alone.
    scrape = ScrapeCredential.from_file(settings.broker_metrics_credential_file)
    echo(f"Access Broker on {url} (mTLS; OpenAPI at /docs; Ctrl-C to stop)")
    with serving(settings, "broker", url, host, port, identity="broker"):
        serve(settings, host, port, scrape)


def serve_ui(settings: PlatformSettings, host: str, port: int, echo: Echo) -> None:
    """The Dagster webserver and daemon against the running stack.

    Run as root on the embedded default, each code location, the webserver and the daemon run
    as their identity's OS user, under a supervisor of their own (``ops/dagster_ui.py``).

    Otherwise ``dagster dev`` replaces this process (exec) instead of running as its child: a
    SIGTERM from a service manager or ``kill`` then reaches ``dagster dev`` itself, which stops
    its webserver, daemon and code server. As a child it outlived ``mlsec ui`` (Python's default
    SIGTERM ends the parent without a word to the child) and kept the UI's port and the
    instance's database connections until killed by hand.
    """
    if separated(settings):
        from mlsec_platform.ops.dagster_ui import serve_ui_separated

        serve_ui_separated(settings, host, port, echo)
        return
    env = {**os.environ, **orchestrator_environment(settings)}
    echo(f"Dagster UI on http://{host}:{port} (Ctrl-C to stop)")
    command = [
        sys.executable,
        "-m",
        "dagster",
        "dev",
        "-w",
        str(project_root() / "workspace.yaml"),
        "-h",
        host,
        "-p",
        str(port),
    ]
    # `dagster dev` keeps this process id: the record stays true until it ends.
    record_service(settings, "ui", f"http://{host}:{port}", host, port)
    os.chdir(project_root())
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, command, env)  # noqa: S606 - a fixed argv of our own interpreter
