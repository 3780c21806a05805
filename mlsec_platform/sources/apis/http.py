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

import email.utils
import json
import logging
import random
import re
import threading
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, quote_plus

import httpx

from mlsec_platform.errors import MlsecError

log = logging.getLogger("mlsec.connectors")

#: Query parameters whose values are secrets, compared case-insensitively.
SENSITIVE_PARAMS: frozenset[str] = frozenset(
    {
        "appid",
        "api_key",
        "apikey",
        "key",
        "token",
        "access_token",
        "client_secret",
        "password",
        "secret",
        "signature",
        "sig",
    }
)
REDACTED = "***"

_SENSITIVE_QUERY = re.compile(
    r"(?i)([?&;](?:" + "|".join(re.escape(p) for p in sorted(SENSITIVE_PARAMS)) + r")=)"
    r"[^&#\s'\"<>]*"
)
_USERINFO = re.compile(r"(?i)(\b[a-z][a-z0-9+.-]*://)[^/@\s?#]+@")


# -- errors ------------------------------------------------------------------------------------
class ApiError(MlsecError, RuntimeError):
    """Base of the connectors' API errors. Messages never contain secrets."""

    http_status = 502

    def __init__(self, message: str, *, url: str | None = None, status: int | None = None):
        super().__init__(message)
        #: The request URL with sensitive query parameters redacted (or None).
        self.url = url
        #: The last HTTP status received (or None when no response came back).
        self.status = status


class InsecureEndpoint(ApiError):
    """The endpoint is not HTTPS (or a request would leave the configured HTTPS host)."""


class ApiUnavailable(ApiError):
    """The API did not answer usefully within the retry budget (network, 5xx, 429)."""

    def __init__(
        self,
        message: str,
        *,
        url: str | None = None,
        status: int | None = None,
        attempts: int = 0,
    ):
        super().__init__(message, url=url, status=status)
        self.attempts = attempts


class ApiRejected(ApiError):
    """The API refused the request (4xx other than 429): retrying would not help."""


class ApiSchemaError(ApiError):
    """The response does not have the shape the connector's contract expects."""


class MissingApiKey(ApiError):
    """The connector needs an API key and none was provided."""


# -- redaction ---------------------------------------------------------------------------------
def redact_url(url: httpx.URL | str) -> str:
    """The URL as text with sensitive query parameters and any user:password replaced by ***."""
    return redact_text(str(url))


def redact_text(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with sensitive query parameters redacted and every known secret value removed.

    A secret is also removed in its URL-encoded forms, since it may have been echoed from a URL.
    """
    text = _SENSITIVE_QUERY.sub(lambda m: m.group(1) + REDACTED, text)
    text = _USERINFO.sub(lambda m: m.group(1) + REDACTED + "@", text)
    for secret in secrets:
        if not secret:
            continue
        for form in {secret, quote(secret, safe=""), quote_plus(secret)}:
            text = text.replace(form, REDACTED)
    return text


class RedactingFilter(logging.Filter):
    """Rewrites a log record's message with sensitive query parameters redacted."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record is the logging module's business, not ours
            return True
        redacted = redact_text(message)
        if redacted != message:
            record.msg, record.args = redacted, ()
        return True


def _install_log_redaction() -> None:
    # httpx logs "HTTP Request: GET <full url> ..." at INFO on the "httpx" logger. Logger filters
    # only see records created by that very logger, which is the case here; httpcore's DEBUG
    # traces do not print URLs.
    for name in ("httpx", log.name):
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactingFilter) for f in logger.filters):
            logger.addFilter(RedactingFilter())


_install_log_redaction()


# -- retry and rate limit ----------------------------------------------------------------------
@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry transient failures."""

    max_attempts: int = 4
    base_delay: float = 1.0
    max_delay: float = 30.0
    max_retry_after: float = 120.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.base_delay < 0 or self.max_delay < 0 or self.max_retry_after < 0:
            raise ValueError("delays must not be negative")

    def backoff(self, attempt: int, rng: random.Random) -> float:
        """Full-jitter delay after failed attempt number ``attempt`` (1-based)."""
        ceiling = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
        return rng.uniform(0.0, ceiling)


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP date), or None."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


@dataclass(frozen=True)
class RateLimit:
    """At most ``calls`` requests per ``period`` seconds, with bursts of up to ``burst``.

    With the default ``burst=1`` requests are spaced ``period / calls`` apart, so no window of
    ``period`` seconds ever holds more than ``calls`` requests. A larger burst lets the first
    ``burst`` requests go at once, at the price of up to ``burst + calls`` in one period.
    """

    calls: int
    period: float = 60.0
    burst: int = 1


class TokenBucket:
    """A thread-safe token bucket; :meth:`acquire` blocks (through ``sleep``) until a token."""

    def __init__(
        self,
        calls: int,
        period: float,
        *,
        burst: int = 1,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if calls < 1 or period <= 0 or burst < 1:
            raise ValueError("a rate limit needs calls >= 1, period > 0 and burst >= 1")
        self.rate = calls / period  # tokens per second
        self.capacity = float(burst)
        self._tokens = float(burst)
        self._clock, self._sleep = clock, sleep
        self._updated = clock()
        self._lock = threading.Lock()

    @classmethod
    def from_limit(
        cls,
        limit: RateLimit,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> TokenBucket:
        return cls(limit.calls, limit.period, burst=limit.burst, clock=clock, sleep=sleep)

    def acquire(self) -> float:
        """Take one token, waiting for it if needed; returns the seconds waited."""
        waited = 0.0
        with self._lock:
            while True:
                now = self._clock()
                elapsed = max(0.0, now - self._updated)
                self._tokens = min(self.capacity, self._tokens + elapsed * self.rate)
                self._updated = now
                if self._tokens >= 1.0 - 1e-9:
                    self._tokens = max(0.0, self._tokens - 1.0)
                    return waited
                wait = (1.0 - self._tokens) / self.rate
                self._sleep(wait)
                waited += wait


# -- client ------------------------------------------------------------------------------------
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
