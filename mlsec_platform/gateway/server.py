"""Serving the gateway over HTTPS with client certificates (mTLS): in the foreground (`mlsec
gateway`) or in a thread (demo, tests)."""

from __future__ import annotations

import ctypes
import ctypes.util

from fastapi.concurrency import run_in_threadpool

from mlsec_platform.gateway.app import create_app
from mlsec_platform.gateway.audited import EVENT_TYPE
from mlsec_platform.gateway.services import IDENTITY, GatewayServices
from mlsec_platform.identities.catalog import SERVER_CERT_ROLES
from mlsec_platform.serving import server
from mlsec_platform.serving.scrape import MetricsScrapeCredential
from mlsec_platform.serving.tls import ServerTls, service_tls
from mlsec_platform.settings import PlatformSettings

#: glibc's ``mallopt`` parameter for the size from which a block is mapped on its own.
_M_MMAP_THRESHOLD = -3


def give_large_buffers_back() -> None:
    """Map every block over 128 KiB on its own, so it goes back to the system when freed.

    Uploads pass through 1-8 MiB buffers (body blocks, CSV blocks, S3 parts) on several
    threads. glibc raises its mmap threshold when the first such buffer is freed and from
    then on serves them from per-thread arenas that keep the memory: the gateway's resident
    set would ratchet up to the sum of every thread's peak. Setting the threshold (which also
    stops it moving) keeps the resident set near what the uploads in flight hold. Nothing to
    do on another C library."""
    name = ctypes.util.find_library("c")
    try:
        mallopt = ctypes.CDLL(name).mallopt if name else None
    except (OSError, AttributeError):
        mallopt = None
    if mallopt is not None:
        mallopt(_M_MMAP_THRESHOLD, 128 * 1024)


def gateway_tls(settings: PlatformSettings, services: GatewayServices) -> ServerTls:
    """The gateway's TLS: its server certificate issued as the `gateway` identity, refused
    handshakes audited as its requests are (``gateway.request``)."""

    async def record(event: dict) -> str:
        return await run_in_threadpool(services.audit.emit, EVENT_TYPE, event)

    return service_tls(settings, services.vault.client, SERVER_CERT_ROLES[IDENTITY], record)


def serve(
    settings: PlatformSettings,
    host: str,
    port: int,
    scrape: MetricsScrapeCredential | None = None,
) -> None:
    """The gateway in the foreground, in a process of its own (`mlsec gateway`); ``scrape``:
    its metrics credential, read before the process became the gateway's OS user."""
    give_large_buffers_back()
    services = GatewayServices.from_settings(settings)
    app = create_app(services, scrape)
    server.serve(app, host, port, settings.trusted_proxies, gateway_tls(settings, services))


class BackgroundGateway(server.BackgroundServer):
    """The real HTTPS gateway on a loopback port, for the length of a `with` block; its
    ``app`` (and services) are open to the test that runs it."""

    def __init__(self, settings: PlatformSettings, port: int, host: str = "127.0.0.1") -> None:
        services = GatewayServices.from_settings(settings)
        self.app = create_app(services)
        super().__init__(
            self.app,
            port,
            host,
            name="gateway",
            trusted_proxies=settings.trusted_proxies,
            tls=gateway_tls(settings, services),
        )
