"""The broker's SDK on the wire: bearer token and correlation id on every request, 429 and 503
retried after ``Retry-After``, any other refusal raised as :class:`BrokerError`."""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from mlsec_platform.errors import MlsecError
from mlsec_platform.serving.client import ServiceClient, Token

#: Statuses that mean "not now": retried after Retry-After.
RETRY_STATUSES = frozenset({429, 503})
#: The longest the client waits before one retry, whatever Retry-After says.
MAX_RETRY_WAIT = 30.0


class BrokerError(MlsecError):
    """The broker refused or failed a request (its problem body, as far as it sent one)."""

    def __init__(
        self, status: int, reason: str, request_id: str | None, decision_id: str | None = None
    ) -> None:
        super().__init__(f"{status}: {reason} (request_id={request_id}, decision_id={decision_id})")
        self.status = status
        self.reason = reason
        self.request_id = request_id
        self.decision_id = decision_id

    @classmethod
    def from_response(cls, response: httpx.Response) -> BrokerError:
        """Read the JSON problem body; anything else (e.g. a proxy's page) keeps its status."""
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            text = response.text.strip()[:200] or response.reason_phrase
            return cls(response.status_code, text, response.headers.get("x-request-id"))
        return cls(
            int(body.get("status", response.status_code)),
            str(body.get("reason", response.reason_phrase)),
            body.get("request_id") or response.headers.get("x-request-id"),
            body.get("decision_id"),
        )


def retry_delay(
    retry_after: str | None,
    *,
    now: datetime | None = None,
    jitter: Callable[[], float] = random.random,
) -> float:
    """Seconds to wait before retrying: ``Retry-After`` (seconds or an HTTP date), capped at
    :data:`MAX_RETRY_WAIT`; 0.5 to 1.5 s when the header is missing or unreadable."""
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
    return min(max(seconds, 0.0), MAX_RETRY_WAIT)


class BrokerTransport(ServiceClient):
    """Requests to the broker and their decoded JSON answers."""

    def __init__(
        self,
        url: str,
        token: Token,
        *,
        timeout: float = 30.0,
        max_retries: int = 5,
        correlation_id: str | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        super().__init__(
            url, token, timeout=timeout, user_agent="mlsec-broker-client", transport=transport
        )
        self.max_retries = max_retries
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
        """The decoded JSON answer; 429/503 retried up to ``max_retries`` times."""
        for attempt in range(self.max_retries + 1):
            response = self._http.request(
                method, path, json=json, params=params, headers=self._headers(correlation_id)
            )
            if response.is_success:
                return response.json()
            if response.status_code not in RETRY_STATUSES or attempt == self.max_retries:
                break
            self.sleep(retry_delay(response.headers.get("retry-after")))
        raise BrokerError.from_response(response)
