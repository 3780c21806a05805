"""The broker's SDK on the wire: bearer token and correlation id on every request, 429 and 503
retried after ``Retry-After`` (when it is within the client's ``max_wait``), any other refusal
raised as its typed :class:`BrokerError`."""

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

    def _correlation(self) -> str:
        """The id shared by the requests of one call: the one given, else a new one."""
        return self.correlation_id or str(uuid.uuid4())

    def _headers(self, correlation_id: str) -> dict[str, str]:
        return {**self._bearer(), "X-Correlation-ID": correlation_id}

    def _send(
        self,
        method: str,
        path: str,
        correlation_id: str,
        *,
        json: Any = None,
        params: Any = None,
    ) -> Any:
        """The decoded JSON answer; 429/503 retried up to ``max_retries`` times, each after
        the wait its Retry-After asks (no connection: after 0.5 to 1.5 s), unless that is
        longer than ``max_wait``: then the refusal is raised at once."""
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
                    return response.json()
                header = response.headers.get("retry-after")
                wait = retry_delay(header)
                failed = BrokerError.from_response(response, wait if header else None)
                if response.status_code not in RETRY_STATUSES:
                    break
            if attempt == self.max_retries or wait > self.max_wait:
                break
            self.sleep(wait)
        raise failed
