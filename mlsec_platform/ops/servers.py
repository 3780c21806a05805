"""The servers for an operator: start them (or check a configured stack), stop them, their health.

Stopping and health are about the embedded servers of the `local` profile only.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from mlsec_platform.ops.refusals import NotApplicable
from mlsec_platform.ops.services import service_states
from mlsec_platform.settings import PlatformSettings, Profile
from mlsec_platform.stack.bootstrap import bootstrap
from mlsec_platform.stack.os_users import SINGLE_USER_NOTE, separated
from mlsec_platform.stack.supervisor import Supervisor

Echo = Callable[[str], None]


class NotLocalProfile(NotApplicable):
    """Only the `local` profile has embedded servers; a configured stack is managed elsewhere."""


def start_servers(settings: PlatformSettings, echo: Echo) -> None:
    """Start (local) or check (stack) the servers, bootstrap identities, say how long it took."""
    started = time.monotonic()
    bring_up(settings, echo)
    echo(f"Ready in {time.monotonic() - started:.1f}s. `mlsec status` shows the addresses.")


def bring_up(settings: PlatformSettings, echo: Echo) -> None:
    """Start (local) or check (stack) the servers, then bootstrap identities idempotently."""
    supervisor = None
    if settings.profile is Profile.LOCAL:
        echo("Starting the embedded stack")
        supervisor = Supervisor(settings, progress=echo)
        endpoints = supervisor.up()
    else:
        endpoints = settings.endpoints()
    echo("Bootstrapping identities and permissions")
    bootstrap(settings, endpoints, progress=echo)
    if supervisor is not None and settings.engine == "spark" and not settings.spark_remote:
        echo("Starting the Spark engine (Sail) with the pipeline's S3 keys")
        supervisor.ensure_sail()


def local_supervisor(settings: PlatformSettings, echo: Echo) -> Supervisor:
    """The supervisor of the embedded servers (refused outside the `local` profile)."""
    if settings.profile is not Profile.LOCAL:
        raise NotLocalProfile("this command manages the embedded servers of the `local` profile")
    return Supervisor(settings, progress=echo)


def stop_servers(settings: PlatformSettings, echo: Echo) -> None:
    """Stop the embedded servers; their state stays under the state folder."""
    local_supervisor(settings, echo).down()


def report_status(settings: PlatformSettings, echo: Echo) -> bool:
    """One line per embedded server (name, state, ports), then one per service of the
    platform (UI, broker, gateway: up or down, URL, pid); True when every server is healthy
    (a service that is not running is no fault: it is started on demand)."""
    unhealthy = 0
    for server in local_supervisor(settings, echo).status():
        state = "healthy" if server.healthy else ("running" if server.running else "stopped")
        unhealthy += not server.healthy
        ports = " ".join(f"{k}={v}" for k, v in server.ports.items())
        echo(f"{server.name:<10} {state:<8} {ports}")
    for service in service_states(settings):
        where = f"{service.url}  pid={service.pid}" if service.up else (service.url or "")
        echo(f"{service.name:<10} {'up' if service.up else 'down':<8} {where}".rstrip())
    if not separated(settings):
        echo(f"Note: {SINGLE_USER_NOTE}.")
    return not unhealthy
