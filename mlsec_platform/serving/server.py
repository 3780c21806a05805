"""Serving an HTTP service with uvicorn: in the foreground (the `mlsec` commands) or in a
thread for the length of a `with` block (demo, tests, benchmarks)."""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from collections.abc import Coroutine, Sequence
from typing import Any, Self, TypeVar

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from mlsec_platform.errors import MlsecError
from mlsec_platform.serving.tls import ServerTls
from mlsec_platform.telemetry.request_log import log_requests_to

T = TypeVar("T")

#: How long a background server may take to answer before it counts as failed.
START_TIMEOUT_SECONDS = 30.0


class ServiceDidNotStart(MlsecError, RuntimeError):
    """A service did not start listening in time; its log says why (a port in use, a server
    it needs that does not answer)."""

    http_status = 503


def uvicorn_server(
    app: Any,
    host: str,
    port: int,
    trusted_proxies: Sequence[str] = (),
    tls: ServerTls | None = None,
) -> uvicorn.Server:
    """A uvicorn server of ``app``: warnings only, no access log of uvicorn's (requests are
    audited, and each service writes its own JSON line per request).

    With ``tls`` (started), every connection passes its gate first: a TLS handshake with a
    client certificate of the platform CA, refusals audited (:mod:`.tls`).

    The client of a request (audited, rate limited) is the socket peer. uvicorn would take it
    from X-Forwarded-For whenever the peer is a loopback address, and the services bind
    loopback, so any caller could name its own address: forwarded headers are believed only
    from the ``trusted_proxies`` an operator names (the `trusted_proxies` setting)."""
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        proxy_headers=bool(trusted_proxies),
        forwarded_allow_ips=list(trusted_proxies) or None,
        log_level="warning",
        access_log=False,
        # The C HTTP parser and event loop: less time per request than h11 and asyncio.
        http=tls.protocol(HttpToolsProtocol) if tls else "httptools",
        loop="uvloop",
    )
    return uvicorn.Server(config)


def serve(
    app: Any,
    host: str,
    port: int,
    trusted_proxies: Sequence[str] = (),
    tls: ServerTls | None = None,
) -> None:
    """Serve ``app`` in the foreground until interrupted, one JSON line per request on
    standard error."""
    log_requests_to(sys.stderr)
    if tls is not None:
        tls.start()
    try:
        uvicorn_server(app, host, port, trusted_proxies, tls).run()
    finally:
        if tls is not None:
            tls.stop()


class BackgroundServer:
    """The real HTTP service of ``app`` on a loopback port, for the length of a `with` block."""

    def __init__(
        self,
        app: Any,
        port: int,
        host: str = "127.0.0.1",
        *,
        name: str,
        trusted_proxies: Sequence[str] = (),
        tls: ServerTls | None = None,
    ) -> None:
        self.name = name
        self.tls = tls
        self.url = f"{'https' if tls else 'http'}://{host}:{port}"
        self._server = uvicorn_server(app, host, port, trusted_proxies, tls)
        self._thread = threading.Thread(target=self._server.run, name=name, daemon=True)

    def __enter__(self) -> Self:
        if self.tls is not None:
            self.tls.start()
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.__exit__()
                raise ServiceDidNotStart(f"the {self.name} did not start on {self.url}")
            time.sleep(0.05)
        return self

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run ``coroutine`` on the server's event loop (where its app's state lives)."""
        loop = self._server.servers[0].get_loop()
        return asyncio.run_coroutine_threadsafe(coroutine, loop).result(START_TIMEOUT_SECONDS)

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(START_TIMEOUT_SECONDS)
        if self.tls is not None:
            self.tls.stop()
