"""Serving the gateway over HTTP: in the foreground (`mlsec gateway`) or in a thread (demo)."""

from __future__ import annotations

import ctypes
import ctypes.util

from mlsec_platform.gateway.app import create_app
from mlsec_platform.gateway.services import GatewayServices
from mlsec_platform.serving import server
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


def serve(settings: PlatformSettings, host: str, port: int) -> None:
    """The gateway in the foreground, in a process of its own (`mlsec gateway`)."""
    give_large_buffers_back()
    app = create_app(GatewayServices.from_settings(settings))
    server.serve(app, host, port, settings.trusted_proxies)


class BackgroundGateway(server.BackgroundServer):
    """The real HTTP gateway on a loopback port, for the length of a `with` block."""

    def __init__(self, settings: PlatformSettings, port: int, host: str = "127.0.0.1") -> None:
        super().__init__(
            create_app(GatewayServices.from_settings(settings)),
            port,
            host,
            name="gateway",
            trusted_proxies=settings.trusted_proxies,
        )
