"""Serving the broker over HTTP: in the foreground (`mlsec broker`) or in a thread (demo, tests,
benchmarks)."""

from __future__ import annotations

from broker_api.app import create_app
from broker_api.services import BrokerServices
from mlsec_platform.serving import server
from mlsec_platform.settings import PlatformSettings


def serve(settings: PlatformSettings, host: str, port: int) -> None:
    app = create_app(BrokerServices.from_settings(settings))
    server.serve(app, host, port, settings.trusted_proxies)


class BackgroundBroker(server.BackgroundServer):
    """The real HTTP broker on a loopback port, for the length of a `with` block; its
    ``services`` are open to the test or benchmark that runs it."""

    def __init__(self, settings: PlatformSettings, port: int, host: str = "127.0.0.1") -> None:
        self.services = BrokerServices.from_settings(settings)
        super().__init__(
            create_app(self.services),
            port,
            host,
            name="broker",
            trusted_proxies=settings.trusted_proxies,
        )
