"""The broker's SDK on the wire: bearer token and correlation id on every request, 429 and 503
retried after ``Retry-After`` (when it is within the client's ``max_wait``), any other refusal
raised as its typed :class:`BrokerError`. With ``receipts=True`` every request asks for a lineage
receipt, and an answer whose receipt does not verify (against the receipt JWKS the broker
publishes, fetched once and again for an unknown key) raises :class:`ReceiptInvalid`."""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from broker_api.client.errors import BrokerError, BrokerUnavailable
from broker_api.client.receipts import (
    RECEIPT_HEADER,
    ReceiptInvalid,
    request_fingerprint,
    verify_receipt,
)
from mlsec_platform.serving.client import ClientTls, ServiceClient, Token

#: Statuses that mean "not now": retried after Retry-After.
RETRY_STATUSES = frozenset({429, 503})
#: The longest the client waits before one retry by default: asked to wait longer (a spent daily
#: quota says hours), it raises the refusal at once rather than retry before it was told to.
MAX_RETRY_WAIT = 30.0


def retry_delay(
    retry_after: str | None,
    *,
    now: datetime | None = None,
    jitter: Callable[[], float] = random.random,
) -> float:
    """Seconds to wait before retrying: ``Retry-After`` (seconds or an HTTP date, never
    negative); 0.5 to 1.5 s when the header is missing or unreadable."""
    seconds: float | None = None
    if retry_after:
        try:
            seconds = float(retry_after)
        except ValueError:
            try:
                when = parsedate_to_datetime(retry_after)
            except (TypeError, ValueError):
                when = None
            if when is not None:
                if when.tzinfo is None:
                    when = when.replace(tzinfo=UTC)
                seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if seconds is None or seconds != seconds:  # missing, unreadable or NaN
        return 0.5 + jitter()
    return max(seconds, 0.0)


class BrokerTransport(ServiceClient):
    """Requests to the broker and their decoded JSON answers."""

    def __init__(
        self,
        url: str,
        token: Token,
        *,
        timeout: float = 30.0,
        max_retries: int = 5,
        max_wait: float = MAX_RETRY_WAIT,
        correlation_id: str | None = None,
        tls: ClientTls | None = None,
        transport: httpx.BaseTransport | None = None,
        receipts: bool = False,
    ) -> None:
        if max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        super().__init__(
            url,
            token,
            timeout=timeout,
            user_agent="mlsec-broker-client",
            tls=tls,
            transport=transport,
        )
        self.max_retries = max_retries
        #: The longest wait before a retry; a longer Retry-After is raised as the refusal.
        self.max_wait = max_wait
        self.correlation_id = correlation_id
        #: How the client waits between retries (replaceable, e.g. to not sleep in tests).
        self.sleep: Callable[[float], None] = time.sleep
        #: Ask for, verify and keep a lineage receipt with every answer.
        self.receipts = receipts
        self._receipt_jwks: tuple[float, dict[str, Any]] | None = None

    def _correlation(self) -> str:
        """The id shared by the requests of one call: the one given, else a new one."""
        return self.correlation_id or str(uuid.uuid4())

    def _headers(self, correlation_id: str) -> dict[str, str]:
        headers = {**self._bearer(), "X-Correlation-ID": correlation_id}
        if self.receipts:
            headers[RECEIPT_HEADER] = "on"
        return headers

    def _send(self, *args: Any, **kwargs: Any) -> Any:
        """The decoded JSON answer of :meth:`_exchange` (same arguments)."""
        return self._exchange(*args, **kwargs)[0]

    def _jwks(self, refresh: bool) -> dict[str, Any]:
        """The broker's receipt JWKS: fetched once, again (at most every 10 s) on refresh."""
        held = self._receipt_jwks
        if held is None or (refresh and time.monotonic() - held[0] > 10):
            # Public keys: no receipt asked for them.
            headers = {**self._bearer(), "X-Correlation-ID": self._correlation()}
            response = self._http.get("/receipts/jwks", headers=headers)
            if not response.is_success:
                raise BrokerError.from_response(response)
            held = self._receipt_jwks = (time.monotonic(), response.json())
        return held[1]

    def _receipt(self, response: httpx.Response) -> dict[str, Any]:
        """The verified receipt of ``response`` (``id``, ``token``, ``claims``), which must be
        about the request this client sent; ReceiptInvalid if not."""
        token = response.headers.get(RECEIPT_HEADER)
        if token is None:
            raise ReceiptInvalid("the broker sent no receipt")
        try:
            claims = verify_receipt(token, response.content, self._jwks(refresh=False))
        except ReceiptInvalid:  # maybe a key version this client has not fetched yet
            claims = verify_receipt(token, response.content, self._jwks(refresh=True))
        asked, sent = claims.get("request") or {}, response.request
        query = sent.url.query.decode("ascii", "replace")
        fingerprint = request_fingerprint(sent.method, sent.url.path, query, sent.content)
        if any(asked.get(k) != v for k, v in fingerprint.items()):
            raise ReceiptInvalid("the receipt is about another request")
        return {"id": claims.get("jti"), "token": token, "claims": claims}

    def _exchange(
        self,
        method: str,
        path: str,
        correlation_id: str,
        *,
        json: Any = None,
        params: Any = None,
    ) -> tuple[Any, dict[str, Any] | None]:
        """The decoded JSON answer and its verified receipt (None unless ``receipts``); 429/503
        retried up to ``max_retries`` times, each after the wait its Retry-After asks (no
        connection: after 0.5 to 1.5 s), unless that is longer than ``max_wait``: then the
        refusal is raised at once."""
        for attempt in range(self.max_retries + 1):
            try:
                response = self._http.request(
                    method, path, json=json, params=params, headers=self._headers(correlation_id)
                )
            except httpx.TransportError as exc:
                failed: BrokerError = BrokerUnavailable(
                    503, f"the broker at {self.url} did not answer: {exc}", None
                )
                wait = retry_delay(None)
            else:
                if response.is_success:
                    receipt = self._receipt(response) if self.receipts else None
                    return response.json(), receipt
                header = response.headers.get("retry-after")
                wait = retry_delay(header)
                failed = BrokerError.from_response(response, wait if header else None)
                if response.status_code not in RETRY_STATUSES:
                    break
            if attempt == self.max_retries or wait > self.max_wait:
                break
            self.sleep(wait)
        raise failed
