"""Serving the broker over HTTP: in the foreground (`mlsec broker`) or in a thread (demo, tests,
benchmarks)."""

from __future__ import annotations

import threading
import time

import uvicorn

from broker_api.app import create_app
from broker_api.services import BrokerServices
from mlsec_platform.settings import PlatformSettings


def _server(services: BrokerServices, host: str, port: int) -> uvicorn.Server:
    config = uvicorn.Config(
        create_app(services),
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        # The C HTTP parser and event loop: less time per request than h11 and asyncio.
        http="httptools",
        loop="uvloop",
    )
    return uvicorn.Server(config)


def serve(settings: PlatformSettings, host: str, port: int) -> None:
    _server(BrokerServices.from_settings(settings), host, port).run()


class BackgroundBroker:
    """The real HTTP broker on a loopback port, for the length of a `with` block."""

    def __init__(self, settings: PlatformSettings, port: int, host: str = "127.0.0.1") -> None:
        self.url = f"http://{host}:{port}"
        self.services = BrokerServices.from_settings(settings)
        self._server = _server(self.services, host, port)
        self._thread = threading.Thread(target=self._server.run, name="broker", daemon=True)

    def __enter__(self) -> BackgroundBroker:
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the broker did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc) -> None:
        self._server.should_exit = True
        self._thread.join(30)
