"""`mlsec up`, `down`, `status`, `logs` and the long-running services (UI, broker, gateway, ...)."""

from __future__ import annotations

import sys

import click

from mlsec_platform.cli.base import _lazy, echo, main
from mlsec_platform.settings import get_settings


@main.command()
def up() -> None:
    """Start the embedded servers (or check the configured ones) and bootstrap identities."""
    _lazy("ops.servers").start_servers(get_settings(), echo)


@main.command()
def down() -> None:
    """Stop the embedded servers; their state stays under the state folder."""
    _lazy("ops.servers").stop_servers(get_settings(), echo)


@main.command()
def status() -> None:
    """Show each embedded server (ports, health) and service (UI, broker, ...: URL, pid)."""
    sys.exit(0 if _lazy("ops.servers").report_status(get_settings(), echo) else 1)


@main.command("bootstrap")
def bootstrap_cmd() -> None:
    """Create or repair policies, AppRoles, buckets, S3 users and Postgres roles (idempotent)."""
    settings = get_settings()
    _lazy("stack.bootstrap").bootstrap(settings, settings.endpoints(), progress=echo)


@main.command("server-certs")
@click.option("--listener-only", is_flag=True, help="OpenBao's only (before it starts).")
def server_certs(listener_only: bool) -> None:
    """Issue the servers' TLS certificates when due (`stack`); print the servers that got one."""
    module = _lazy("stack.bootstrap.server_certs")
    for folder in module.ensure_stack_certificates(get_settings(), listener_only=listener_only):
        echo(folder)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=None, help="Default MLSEC_GATEWAY_PORT (8470).")
def gateway(host: str, port: int | None) -> None:
    """Serve the ingestion gateway (uploads and events) as the `gateway` identity."""
    _lazy("ops.serve").serve_gateway(get_settings(), host, port, echo)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=None, help="Default MLSEC_BROKER_PORT (8480).")
def broker(host: str, port: int | None) -> None:
    """Serve the Access Broker (read-only, policy-checked, audited) as the `broker` identity."""
    _lazy("ops.serve").serve_broker(get_settings(), host, port, echo)


@main.command()
@click.option("--port", default=3000, show_default=True)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to bind; 0.0.0.0 only inside a container or behind a proxy.",
)
def ui(port: int, host: str) -> None:
    """Serve the Dagster webserver and daemon against the running stack."""
    _lazy("ops.serve").serve_ui(get_settings(), host, port, echo)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=9464, show_default=True)
def metrics(host: str, port: int) -> None:
    """Serve the pipeline runs' Prometheus metrics (rows, durations, gates, tokens minted)."""
    _lazy("ops.metrics").serve_metrics(get_settings(), host, port, echo)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8501, show_default=True)
@click.option("--broker", default=None, help="Broker URL (default: the running `mlsec broker`).")
@click.option("--viewer", help="analyst, analyst-sp or support; else MLSEC_DASHBOARD_TOKEN.")
def dashboard(host: str, port: int, broker: str | None, viewer: str | None) -> None:
    """Serve the BI dashboard over Gold (Streamlit), read through the broker as one viewer."""
    serve = _lazy("ops.dashboard").serve_dashboard
    sys.exit(serve(get_settings(), host, port, viewer, broker, echo))


@main.command()
@click.argument("name", required=False)
@click.option("-n", "--lines", "count", default=50, show_default=True, help="Lines from the end.")
def logs(name: str | None, count: int) -> None:
    """List every log of the embedded stack, or print the end of one."""
    if name is None:
        _lazy("ops.logs").list_logs(get_settings(), echo)
    else:
        _lazy("ops.logs").show_log(get_settings(), name, count, echo)
