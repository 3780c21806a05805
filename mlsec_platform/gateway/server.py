"""Serving the gateway over HTTP: in the foreground (`mlsec gateway`) or in a thread (demo)."""

from __future__ import annotations

from mlsec_platform.gateway.app import create_app
from mlsec_platform.gateway.services import GatewayServices
from mlsec_platform.serving import server
from mlsec_platform.settings import PlatformSettings


def serve(settings: PlatformSettings, host: str, port: int) -> None:
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
