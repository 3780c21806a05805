"""Serving the gateway over HTTP: in the foreground (`mlsec gateway`) or in a thread (demo)."""

from __future__ import annotations

import threading
import time

import uvicorn

from mlsec_platform.gateway.app import create_app
from mlsec_platform.gateway.services import GatewayServices
from mlsec_platform.settings import PlatformSettings


def _server(settings: PlatformSettings, host: str, port: int) -> uvicorn.Server:
    app = create_app(GatewayServices.from_settings(settings))
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False)
    return uvicorn.Server(config)


def serve(settings: PlatformSettings, host: str, port: int) -> None:
    _server(settings, host, port).run()


class BackgroundGateway:
    """The real HTTP gateway on a loopback port, for the length of a `with` block."""

    def __init__(self, settings: PlatformSettings, port: int, host: str = "127.0.0.1") -> None:
        self.url = f"http://{host}:{port}"
        self._server = _server(settings, host, port)
        self._thread = threading.Thread(target=self._server.run, name="gateway", daemon=True)

    def __enter__(self) -> BackgroundGateway:
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the gateway did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc) -> None:
        self._server.should_exit = True
        self._thread.join(30)
