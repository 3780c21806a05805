"""TLS with client certificates (mTLS) for the platform's HTTP services.

:class:`ServerTls` holds a service's server certificate: issued by the platform CA (OpenBao's
PKI engine) as the service's own identity when it starts, renewed at two thirds of its life.
Its private key stays in memory (:mod:`.certificates`). A renewal builds a new context; new
handshakes use it, connections already open keep theirs.

The handshake is the service's own, not asyncio's behind uvicorn's back: :class:`TlsGate`
accepts the plain TCP connection, runs the handshake (``loop.start_tls``) against a context
that requires a client certificate of the platform CA, and only then hands the connection to
uvicorn's HTTP protocol. So a client without a valid certificate (none, another CA's, an
expired one) or one speaking plain HTTP never reaches the app, and is still counted and
audited (:class:`TlsRefusals`: folded per address and kind like the request envelope's
refusals, and an address that draws too many is cut off before the handshake). Each request
of an accepted connection carries its client certificate in the ASGI scope's ``tls``
extension: ``client_cert_x5t_s256`` (RFC 8705 thumbprint) and ``client_cert_subject``.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import threading
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import hvac

from mlsec_platform.errors import ConfigurationError, MlsecError
from mlsec_platform.serving.certificates import (
    IssuedCertificate,
    client_certificate,
    issue_certificate,
    server_context,
)
from mlsec_platform.serving.envelope import ClientLimiter, RefusalFolder
from mlsec_platform.settings import PlatformSettings

log = logging.getLogger(__name__)

#: The ASGI scope extension that carries the client certificate of the connection.
TLS_EXTENSION = "tls"
#: A client that has not finished its handshake by then is dropped (s).
HANDSHAKE_TIMEOUT = 10.0
#: When a renewal fails, it is tried again this often (s), while the certificate lasts.
RENEW_RETRY_SECONDS = 30.0
#: Renewals are at least this far apart (s), however short the certificates.
MIN_RENEW_SECONDS = 1.0

#: Statuses of refused handshakes, as nginx names them (never sent: there is no HTTP yet).
NO_CERTIFICATE, CERTIFICATE_REFUSED, PLAIN_HTTP = 496, 495, 497
TOO_MANY_REFUSED_CONNECTIONS = "too many refused connections from this address; retry later"


class TlsUnavailable(ConfigurationError):
    """A service cannot get its server certificate or trust the platform CA: it does not
    serve at all (never in plain text)."""


class ServerTls:
    """A service's server certificate and its TLS context, renewed before it expires.

    ``issue`` obtains a new certificate (a call to OpenBao as the service's identity);
    ``ca_bundle`` holds the CA whose client certificates are accepted; ``refusals`` counts
    and audits refused handshakes."""

    def __init__(
        self,
        issue: Callable[[], IssuedCertificate],
        ca_bundle: Path | str,
        refusals: TlsRefusals,
        *,
        renew_fraction: float = 2 / 3,
        handshake_timeout: float = HANDSHAKE_TIMEOUT,
    ) -> None:
        self._issue, self.ca_bundle, self.refusals = issue, ca_bundle, refusals
        self.renew_fraction, self.handshake_timeout = renew_fraction, handshake_timeout
        self.certificate: IssuedCertificate | None = None
        self.context: ssl.SSLContext | None = None
        self.renewals = 0
        self._timer: threading.Timer | None = None
        self._stopped = threading.Event()

    def start(self) -> None:
        """Issue the first certificate; without one the service does not start."""
        self._stopped.clear()
        try:
            self._install(self._issue())
        except (hvac.exceptions.VaultError, MlsecError, OSError, ssl.SSLError) as exc:
            raise TlsUnavailable(
                f"no server certificate ({type(exc).__name__}: {exc}): the platform CA is set up "
                f"by `mlsec bootstrap`, which also writes its certificate to {self.ca_bundle}"
            ) from None

    def _install(self, issued: IssuedCertificate) -> None:
        # A new context swapped in as one reference: a handshake starting on the event loop
        # sees the old one or the new one, never a certificate without its key.
        self.context = server_context(issued, self.ca_bundle)
        self.certificate = issued
        self._schedule((issued.renew_at(self.renew_fraction) - datetime.now(UTC)).total_seconds())

    def _schedule(self, delay: float) -> None:
        if self._stopped.is_set():
            return
        self._timer = threading.Timer(max(delay, MIN_RENEW_SECONDS), self.renew)
        self._timer.daemon = True
        self._timer.start()

    def renew(self) -> None:
        """A new certificate for new handshakes; on failure, tried again shortly (logged)."""
        try:
            issued = self._issue()
        except Exception as exc:  # noqa: BLE001 - any failure: keep serving, retry
            left = self.certificate.not_after - datetime.now(UTC) if self.certificate else None
            log.error(
                "server certificate renewal failed (%s: %s); %s left, retrying in %.0f s",
                type(exc).__name__,
                exc,
                left,
                RENEW_RETRY_SECONDS,
            )
            self._schedule(RENEW_RETRY_SECONDS)
            return
        self.renewals += 1
        self._install(issued)

    def stop(self) -> None:
        self._stopped.set()
        if self._timer is not None:
            self._timer.cancel()

    def protocol(self, inner: Callable[..., asyncio.Protocol]) -> Callable[..., asyncio.Protocol]:
        """A uvicorn ``http`` protocol class: the gate in front of ``inner`` (uvicorn's
        HTTP protocol), built with uvicorn's own arguments."""

        def gate(**uvicorn: Any) -> TlsGate:
            return TlsGate(self, lambda: inner(**uvicorn), uvicorn.get("_loop"))

        return gate


def service_tls(
    settings: PlatformSettings,
    vault: Callable[[], hvac.Client],
    role: str,
    record: Callable[[dict], Awaitable[Any]],
    on_refusal: Callable[[int], None] | None = None,
) -> ServerTls:
    """The TLS of a service whose identity's OpenBao client is ``vault`` (its policy allows
    ``role``): certificates for ``settings.tls_server_names``, client certificates of the
    CA in ``settings.ca_bundle``, refusals recorded through ``record`` (the service's audit
    log) and limited per address like its other refusals."""
    refusals = TlsRefusals(
        record,
        burst=settings.client_refusal_burst,
        rate=settings.client_refusal_rate,
        window=settings.audit_fold_window,
        on_refusal=on_refusal,
    )
    names, ttl = settings.tls_server_names, settings.tls_server_cert_ttl
    return ServerTls(
        lambda: issue_certificate(vault(), role, names, ttl_seconds=ttl),
        settings.ca_bundle,
        refusals,
    )


class TlsRefusals:
    """Counts and audits connections refused at the handshake, folded like the envelope's
    refusals: identical ones from one address within ``window`` seconds are one event with
    their ``count``, and an address past its ``burst`` is cut off before the handshake.

    ``record`` commits one event (on the service's event loop); ``on_refusal`` is told the
    kind of each refusal (a metric)."""

    def __init__(
        self,
        record: Callable[[dict], Awaitable[Any]],
        *,
        burst: int,
        rate: float,
        window: float,
        on_refusal: Callable[[int], None] | None = None,
    ) -> None:
        self.limiter = ClientLimiter(burst, rate)
        self.folder = RefusalFolder(record, window=window)
        self.counts: Counter[int] = Counter()
        self._on_refusal = on_refusal
        self._writing: set[asyncio.Future] = set()

    def cut_off(self, client: str | None) -> bool:
        """Whether ``client`` has drawn its refusals (its connection is closed at once)."""
        return self.limiter.retry_after(client) is not None

    def refuse(self, client: str | None, status: int, reason: str, started: float) -> None:
        """Count and audit one refused connection (the audit commit runs on its own)."""
        self.counts[status] += 1
        if self._on_refusal is not None:
            self._on_refusal(status)
        if status != 429:
            self.limiter.charge(client)
        event = {
            "request_id": uuid.uuid4().hex,
            "method": None,
            "path": None,
            "client": client,
            "status": status,
            "reason": reason,
            "outcome": "denied",
            "stage": "tls",
            "latency_ms": round((time.perf_counter() - started) * 1000, 3),
        }
        task = asyncio.ensure_future(self.folder.record((client, status, reason), event))
        self._writing.add(task)
        task.add_done_callback(self._written)

    def _written(self, task: asyncio.Future) -> None:
        self._writing.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("a refused TLS connection could not be audited: %s", task.exception())


def refusal_of(exc: BaseException) -> tuple[int, str]:
    """The status and reason of a failed handshake."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return CERTIFICATE_REFUSED, f"client certificate refused: {exc.verify_message}"
    if isinstance(exc, ssl.SSLError):
        if exc.reason == "HTTP_REQUEST":
            return PLAIN_HTTP, "plain HTTP sent to a TLS port: use https"
        if exc.reason == "PEER_DID_NOT_RETURN_A_CERTIFICATE":
            return NO_CERTIFICATE, (
                "no client certificate: present one the platform CA issued (`mlsec cert issue`)"
            )
        return 400, f"TLS handshake failed ({exc.reason or type(exc).__name__})"
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return 408, "TLS handshake not finished in time"
    return 400, "connection closed during the TLS handshake"


class TlsGate(asyncio.Protocol):
    """One connection: the handshake first, then uvicorn's HTTP protocol (see the module)."""

    def __init__(
        self,
        tls: ServerTls,
        inner: Callable[[], asyncio.Protocol],
        loop: asyncio.AbstractEventLoop | None,
    ) -> None:
        self.tls, self.inner = tls, inner
        self.loop = loop or asyncio.get_running_loop()
        self.client: str | None = None
        self.task: asyncio.Task | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        started = time.perf_counter()
        peer = transport.get_extra_info("peername")
        self.client = peer[0] if peer else None
        refusals = self.tls.refusals
        if refusals.cut_off(self.client):
            transport.abort()
            refusals.refuse(self.client, 429, TOO_MANY_REFUSED_CONNECTIONS, started)
            return
        handoff = _Handoff()
        handshake = self.loop.start_tls(
            transport,
            handoff,
            self.tls.context,
            server_side=True,
            ssl_handshake_timeout=self.tls.handshake_timeout,
        )
        # start_tls's first step runs now, before this returns: the event loop starts reading
        # the socket as soon as connection_made returns, and the first bytes (the
        # ClientHello, or a plain HTTP request) must reach the TLS protocol, not this one.
        try:
            waiting = handshake.send(None)
        except BaseException as exc:  # noqa: BLE001 - refused like any failed handshake
            transport.abort()
            refusals.refuse(self.client, *refusal_of(exc), started)
            return
        self.task = self.loop.create_task(self._handshake(handshake, waiting, handoff, started))

    async def _handshake(
        self, handshake: Any, waiting: Any, handoff: _Handoff, started: float
    ) -> None:
        """The rest of ``handshake`` (start_tls), then the connection handed to uvicorn."""
        try:
            secure = await _finish(handshake, waiting)
            ssl_object = secure.get_extra_info("ssl_object") if secure else None
            if ssl_object is None:  # closed as the handshake ended
                raise ConnectionResetError("connection closed during the TLS handshake")
            extension = client_certificate(ssl_object)
        except Exception as exc:  # noqa: BLE001 - every failed handshake is refused alike
            self.tls.refusals.refuse(self.client, *refusal_of(exc), started)
            return
        http = self.inner()
        http.app = _with_tls(http.app, extension)  # type: ignore[attr-defined]
        handoff.hand_to(http, secure)

    def data_received(self, data: bytes) -> None:  # start_tls took the transport over
        raise AssertionError("bytes before the TLS handshake")


async def _finish(coroutine: Any, waiting: Any) -> Any:
    """Drive ``coroutine``, whose first step already ran and is ``waiting`` on a future, to
    its end (what a task does; Python 3.12's eager tasks would do the first step alike)."""
    while True:
        try:
            # Waited on, not awaited: the coroutine takes the future's outcome itself.
            await asyncio.wait((waiting,))
        except asyncio.CancelledError:
            coroutine.close()
            raise
        try:
            waiting = coroutine.send(None)
        except StopIteration as done:
            return done.value


def presented_certificate(scope: dict) -> str | None:
    """The thumbprint of the client certificate a request's connection presented (the gate
    puts it in the scope), or None (a request that did not come through the gate)."""
    tls = scope.get("extensions", {}).get(TLS_EXTENSION)
    return tls.get("client_cert_x5t_s256") if tls else None


def _with_tls(app: Callable[..., Awaitable[None]], extension: dict[str, Any]):
    """``app`` with the connection's ``tls`` extension in each request's scope."""

    async def with_tls(scope: dict, receive: Any, send: Any) -> None:
        scope.setdefault("extensions", {})[TLS_EXTENSION] = extension
        await app(scope, receive, send)

    return with_tls


class _Handoff(asyncio.Protocol):
    """The TLS transport's protocol until uvicorn's takes over: whatever arrives in between
    (a request sent right behind the handshake) is kept and passed on."""

    def __init__(self) -> None:
        self.pending: list[bytes] = []
        self.eof = False
        self.lost: tuple[Exception | None] | None = None
        self.paused = False

    def data_received(self, data: bytes) -> None:
        self.pending.append(data)

    def eof_received(self) -> bool:
        self.eof = True
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = (exc,)

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False

    def hand_to(self, http: asyncio.Protocol, transport: asyncio.Transport) -> None:
        transport.set_protocol(http)
        http.connection_made(transport)
        if self.paused:
            http.pause_writing()
        for data in self.pending:
            http.data_received(data)
        if self.eof and not http.eof_received():
            transport.close()
        if self.lost is not None:
            http.connection_lost(self.lost[0])
