"""The HTTP layer shared by the official API connectors.

One :class:`ApiClient` per connector wraps an ``httpx.Client`` and adds what every scheduled
pull needs:

* **HTTPS only.** A base URL that is not ``https://`` is refused with :class:`InsecureEndpoint`;
  redirects are not followed (a redirect could leave HTTPS or the host). Tests use ``https://``
  URLs served by an ``httpx.MockTransport``.
* **Retries** on connect/read errors, timeouts, HTTP 5xx and 429, with exponential backoff and
  full jitter (``uniform(0, min(max_delay, base_delay * 2**(attempt-1)))``). On 429/503 a
  ``Retry-After`` header (delta-seconds or HTTP date) is honoured instead, capped at
  ``max_retry_after``. After ``max_attempts`` the call fails with :class:`ApiUnavailable`.
  Other 4xx answers fail at once with :class:`ApiRejected`.
* **Client-side rate limiting** with a token bucket (``calls`` per ``period``), so a long list of
  requests stays under the provider's quota. Every attempt, retries included, takes a token.
* **Secret hygiene.** Keys that travel as query parameters (OpenWeather's ``appid``) never show
  in an exception message, a ``repr`` or a log line: URLs are shown with sensitive parameters
  as ``***``, text taken from responses or transport errors is scrubbed of the values actually
  sent, and httpx exceptions are never chained (errors are raised outside the ``except`` block,
  so neither ``__cause__`` nor ``__context__`` holds them). httpx's own INFO line, which prints
  the full request URL, is redacted by a filter on the ``httpx`` logger.

Clock, sleep and randomness are injectable so tests neither sleep nor depend on chance.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import httpx

from mlsec_platform.sources.apis.errors import (
    ApiError,
    ApiRejected,
    ApiSchemaError,
    ApiUnavailable,
    InsecureEndpoint,
)
from mlsec_platform.sources.apis.limits import (
    RateLimit,
    RetryPolicy,
    TokenBucket,
    parse_retry_after,
)
from mlsec_platform.sources.apis.redaction import SENSITIVE_PARAMS, redact_text, redact_url

log = logging.getLogger("mlsec.connectors")

_TRANSIENT = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)
_RETRY_AFTER_STATUSES = frozenset({429, 503})
_SNIPPET = 200
_INVALID = object()


def user_agent(connector: tuple[str, str]) -> str:
    name, version = connector
    return f"mlsec-platform-{name}/{version}"


class ApiClient:
    """An HTTPS client for one connector: retries, rate limit, typed errors, no leaked keys."""

    def __init__(
        self,
        base_url: str,
        connector: tuple[str, str],
        *,
        transport: httpx.BaseTransport | None = None,
        timeout: float = 10.0,
        retry: RetryPolicy | None = None,
        rate_limit: RateLimit | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        utcnow: Callable[[], datetime] | None = None,
    ) -> None:
        self.connector = connector
        self.name = connector[0]
        url = _parse_url(base_url)
        if url is None or url.scheme != "https" or not url.host:
            raise InsecureEndpoint(
                f"{self.name}: refusing endpoint {redact_url(base_url)!r}: only https:// "
                "URLs are allowed",
                url=redact_url(base_url),
            )
        self.base_url = url
        self.retry = retry or RetryPolicy()
        self._sleep = sleep
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self._utcnow = utcnow or (lambda: datetime.now(UTC))
        self._bucket = (
            TokenBucket.from_limit(rate_limit, clock=clock, sleep=sleep) if rate_limit else None
        )
        self._http = httpx.Client(
            base_url=url,
            transport=transport,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
            headers={"User-Agent": user_agent(connector), "Accept": "application/json"},
            follow_redirects=False,
        )

    def __repr__(self) -> str:
        return f"ApiClient({self.name!r}, base_url={redact_url(self.base_url)!r})"

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # -- requests ------------------------------------------------------------------------------
    def get(
        self,
        path: str,
        params: Mapping[str, str | int] | None = None,
        *,
        allow_status: Collection[int] = (),
    ) -> httpx.Response:
        """GET ``path`` (relative to the base URL) and return a 2xx response.

        Statuses listed in ``allow_status`` are returned as well, for the caller to interpret
        (e.g. an API that answers 404 for "no data"). Raises :class:`ApiUnavailable`,
        :class:`ApiRejected`, :class:`InsecureEndpoint` or :class:`ApiError`.
        """
        params = dict(params or {})
        secrets = [str(v) for k, v in params.items() if k.lower() in SENSITIVE_PARAMS and str(v)]
        request = self._http.build_request("GET", path, params=params)
        shown = redact_text(str(request.url), secrets)
        if request.url.scheme != "https" or request.url.host != self.base_url.host:
            raise InsecureEndpoint(
                f"{self.name}: refusing request to {shown}: it leaves {self.base_url.host} "
                "over HTTPS",
                url=shown,
            )

        attempts = self.retry.max_attempts
        last_failure, last_status = "no attempt made", None
        for attempt in range(1, attempts + 1):
            if self._bucket is not None:
                self._bucket.acquire()
            response, failure, transient = self._send(request, secrets)
            if response is None:
                log.warning(
                    "%s GET %s -> %s (attempt %d/%d)", self.name, shown, failure, attempt, attempts
                )
                if not transient:
                    raise ApiError(f"{self.name}: GET {shown} failed: {failure}", url=shown)
                last_failure, last_status = failure, None
                delay = self.retry.backoff(attempt, self._rng)
            else:
                status = response.status_code
                log.info(
                    "%s GET %s -> HTTP %d (attempt %d/%d)",
                    self.name,
                    shown,
                    status,
                    attempt,
                    attempts,
                )
                if 200 <= status < 300 or status in allow_status:
                    return response
                detail = _snippet(response, secrets)
                if status == 429 or status >= 500:
                    last_failure, last_status = f"HTTP {status}: {detail}", status
                    delay = self._delay(response, attempt)
                elif 400 <= status < 500:
                    raise ApiRejected(
                        f"{self.name}: GET {shown} rejected with HTTP {status}: {detail}",
                        url=shown,
                        status=status,
                    )
                else:
                    raise ApiError(
                        f"{self.name}: GET {shown} answered unexpected HTTP {status}",
                        url=shown,
                        status=status,
                    )
            if attempt < attempts:
                log.info("%s retrying GET %s in %.2fs", self.name, shown, delay)
                self._sleep(delay)

        raise ApiUnavailable(
            f"{self.name}: GET {shown} failed after {attempts} attempt(s); last: {last_failure}",
            url=shown,
            status=last_status,
            attempts=attempts,
        )

    def _send(
        self, request: httpx.Request, secrets: list[str]
    ) -> tuple[httpx.Response | None, str, bool]:
        """One attempt: the response, or the scrubbed failure text and whether it is transient.

        The httpx exception itself goes no further than this method, so it can never end up as
        the ``__cause__`` or ``__context__`` of an error raised by the client.
        """
        try:
            return self._http.send(request), "", False
        except _TRANSIENT as exc:
            return None, redact_text(f"{type(exc).__name__}: {exc}", secrets), True
        except httpx.HTTPError as exc:  # e.g. a proxy or protocol error: retrying will not help
            return None, redact_text(f"{type(exc).__name__}: {exc}", secrets), False

    def _delay(self, response: httpx.Response, attempt: int) -> float:
        if response.status_code in _RETRY_AFTER_STATUSES:
            wait = parse_retry_after(response.headers.get("Retry-After"), self._utcnow())
            if wait is not None:
                return min(wait, self.retry.max_retry_after)
        return self.retry.backoff(attempt, self._rng)


def _parse_url(value: str) -> httpx.URL | None:
    url: httpx.URL | None
    try:
        url = httpx.URL(value)
    except (httpx.InvalidURL, TypeError):
        url = None
    return url


def _snippet(response: httpx.Response, secrets: Iterable[str]) -> str:
    """The start of a response body, on one line and scrubbed of secrets."""
    try:
        text = response.text
    except (UnicodeDecodeError, LookupError):
        text = repr(response.content[:_SNIPPET])
    text = " ".join(text.split())
    if len(text) > _SNIPPET:
        text = text[:_SNIPPET] + "..."
    return redact_text(text, secrets) or "(empty body)"


def response_json(
    response: httpx.Response,
    what: str,
    *,
    parse_float: Callable[[str], Any] | None = None,
) -> Any:
    """The JSON body of ``response``, or :class:`ApiSchemaError` naming ``what``."""
    try:
        payload = json.loads(response.content, parse_float=parse_float)
    except (ValueError, UnicodeDecodeError):
        payload = _INVALID
    if payload is _INVALID:
        kind = response.headers.get("Content-Type", "no content type")
        raise ApiSchemaError(
            f"{what}: the response is not JSON ({kind}, HTTP {response.status_code})",
            status=response.status_code,
        )
    return payload
