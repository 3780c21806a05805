"""Serving the broker over HTTPS with client certificates (mTLS): in the foreground (`mlsec
broker`) or in a thread (demo, tests, benchmarks)."""

from __future__ import annotations

from broker_api.app import create_app
from broker_api.metrics import ScrapeCredential
from broker_api.services import BrokerServices
from mlsec_platform.identities.catalog import SERVER_CERT_ROLES
from mlsec_platform.serving import server
from mlsec_platform.serving.tls import ServerTls, service_tls
from mlsec_platform.settings import PlatformSettings


def broker_tls(settings: PlatformSettings, services: BrokerServices) -> ServerTls:
    """The broker's TLS: its server certificate issued as the `broker` identity, refused
    handshakes audited as its requests are and counted as denials of kind ``tls``."""
    return service_tls(
        settings,
        services.vault.client,
        SERVER_CERT_ROLES["broker"],
        services.sink.arecord,
        on_refusal=lambda _: services.metrics.deny("tls"),
    )


def serve(
    settings: PlatformSettings, host: str, port: int, scrape: ScrapeCredential | None = None
) -> None:
    """The broker in the foreground (`mlsec broker`); ``scrape``: its metrics credential,
    read before the process became the broker's OS user."""
    services = BrokerServices.from_settings(settings, scrape)
    app = create_app(services)
    server.serve(app, host, port, settings.trusted_proxies, broker_tls(settings, services))


class BackgroundBroker(server.BackgroundServer):
    """The real HTTPS broker on a loopback port, for the length of a `with` block; its
    ``services`` are open to the test or benchmark that runs it."""

    def __init__(self, settings: PlatformSettings, port: int, host: str = "127.0.0.1") -> None:
        self.services = BrokerServices.from_settings(settings)
        super().__init__(
            create_app(self.services),
            port,
            host,
            name="broker",
            trusted_proxies=settings.trusted_proxies,
            tls=broker_tls(settings, self.services),
        )
