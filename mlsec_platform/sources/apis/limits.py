"""How the API connectors pace their calls: the retry policy, ``Retry-After`` and the rate
limit's token bucket."""

from __future__ import annotations

import email.utils
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime


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
