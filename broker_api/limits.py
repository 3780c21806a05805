"""Caps on what one request may return, and on how often a subject or project may ask.

:class:`Limits` are the caps a policy sets. The counters here are one process's: the broker
counts in the shared ones (:mod:`broker_api.shared_limits`), which build on
:class:`ConcurrencyGate` for the replica's own capacity; :class:`RateLimiter` and
:class:`ProjectRowQuota` are the same rules for an app without a shared store (the app's tests
without servers).
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from broker_api.principal import Principal


@dataclass(frozen=True)
class Limits:
    #: Rows one page may return (a request's ``limit`` above this is refused).
    max_rows_per_page: int = 1_000
    #: Bytes of row data one response may carry.
    max_bytes: int = 4 * 1024 * 1024
    #: Wall-clock seconds one query may run before it is interrupted.
    timeout_seconds: float = 10.0
    #: Sustained requests per minute per subject, and the burst above it.
    requests_per_minute: int = 600
    burst: int = 60
    #: Sustained requests per minute for a whole project (all its subjects).
    project_requests_per_minute: int = 3_000
    #: Requests one subject may have in flight at once.
    concurrency: int = 4
    #: Rows a whole project may be returned per UTC day (the quota; 429 once spent).
    rows_per_day: int = 5_000_000


def buckets(limits: Limits) -> tuple[tuple[float, float], tuple[float, float]]:
    """(refill rate per second, capacity) of the subject's bucket and of the project's: the
    project's holds ten seconds of its rate, and never less than one subject's burst."""
    subject = (limits.requests_per_minute / 60.0, float(max(limits.burst, 1)))
    project = (
        limits.project_requests_per_minute / 60.0,
        float(max(limits.burst, limits.project_requests_per_minute / 6.0, 1)),
    )
    return subject, project


class _Bucket:
    """Tokens left at ``stamp``; ``full_at`` is when refilling makes it full (then forgettable)."""

    __slots__ = ("tokens", "stamp", "full_at")

    def __init__(self, tokens: float, stamp: float) -> None:
        self.tokens = tokens
        self.stamp = stamp
        self.full_at = stamp


class RateLimiter:
    """Token buckets per subject and per project, refilled continuously.

    A request takes one token from its subject's bucket (``requests_per_minute``, capacity
    ``burst``) and one from its project's bucket (``project_requests_per_minute``, capacity
    ``max(burst, project rate / 6)``: ten seconds of the project's rate), or from neither.
    Rates and capacities come from the :class:`Limits` passed to each call, so they may differ
    per principal and change at runtime.

    A bucket that has refilled to capacity is the same as no bucket, so idle keys are dropped
    by a sweep every ``sweep_seconds``; past ``max_keys`` the least recently used go first
    (which can only be lenient: a dropped key starts again with a full bucket).
    """

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        sweep_seconds: float = 60.0,
        max_keys: int = 100_000,
    ) -> None:
        self._clock = clock
        self._sweep_seconds = sweep_seconds
        self._max_keys = max_keys
        self._subjects: OrderedDict[str, _Bucket] = OrderedDict()
        self._projects: OrderedDict[str, _Bucket] = OrderedDict()
        self._lock = threading.Lock()
        self._next_sweep = clock() + sweep_seconds

    def check(self, principal: Principal, limits: Limits) -> float | None:
        """None if ``principal`` may go ahead (a token was taken from both its buckets), else
        the whole seconds (at least 1) until a retry can succeed, for ``Retry-After``."""
        (s_rate, s_cap), (p_rate, p_cap) = buckets(limits)
        with self._lock:
            now = self._clock()
            if now >= self._next_sweep:
                self._sweep(now)
            sub = self._refill(self._subjects, principal.subject, s_rate, s_cap, now)
            proj = self._refill(self._projects, principal.project, p_rate, p_cap, now)
            if sub.tokens >= 1.0 and proj.tokens >= 1.0:
                sub.tokens -= 1.0
                proj.tokens -= 1.0
                sub.full_at = now + _refill_time(s_cap - sub.tokens, s_rate)
                proj.full_at = now + _refill_time(p_cap - proj.tokens, p_rate)
                return None
            wait = max(
                _refill_time(1.0 - sub.tokens, s_rate), _refill_time(1.0 - proj.tokens, p_rate)
            )
        return float(max(1, math.ceil(wait)))

    async def admit(self, principal: Principal, limits: Limits) -> float | None:
        """:meth:`check`, under the name the request path calls (as the shared limiter's)."""
        return self.check(principal, limits)

    def __len__(self) -> int:
        """Buckets held (subjects plus projects)."""
        with self._lock:
            return len(self._subjects) + len(self._projects)

    def _refill(
        self, buckets: OrderedDict[str, _Bucket], key: str, rate: float, cap: float, now: float
    ) -> _Bucket:
        bucket = buckets.get(key)
        if bucket is None:
            bucket = buckets[key] = _Bucket(cap, now)
            if len(buckets) > self._max_keys:
                buckets.popitem(last=False)
            return bucket
        buckets.move_to_end(key)
        bucket.tokens = min(cap, bucket.tokens + (now - bucket.stamp) * rate)
        bucket.stamp = now
        return bucket

    def _sweep(self, now: float) -> None:
        for buckets in (self._subjects, self._projects):
            for key in [k for k, b in buckets.items() if b.full_at <= now]:
                del buckets[key]
        self._next_sweep = now + self._sweep_seconds


def _refill_time(missing: float, rate: float) -> float:
    """Seconds for a bucket filling at ``rate`` tokens/s to gain ``missing`` tokens."""
    if missing <= 0:
        return 0.0
    return missing / rate if rate > 0 else _NEVER


#: Retry-After for a bucket that never refills (a rate of 0).
_NEVER = 3600.0


class SlotGate:
    """What holds in-flight slots: :meth:`acquire` one or not, :meth:`release` it, and
    :meth:`slot` for a block."""

    def acquire(self, subject: str, cap: int) -> bool:
        raise NotImplementedError

    def release(self, subject: str) -> None:
        raise NotImplementedError

    @contextmanager
    def slot(self, subject: str, cap: int) -> Iterator[bool]:
        """``with gate.slot(subject, cap) as ok:`` where ``ok`` says whether a slot was taken;
        a taken slot is released on leaving the block."""
        ok = self.acquire(subject, cap)
        try:
            yield ok
        finally:
            if ok:
                self.release(subject)


class ConcurrencyGate(SlotGate):
    """Caps requests in flight: per subject (the caller's ``cap``) and over all subjects.

    Non-blocking: a request that finds no free slot is refused (answer 429/503), not queued.
    """

    def __init__(self, global_cap: int = 64) -> None:
        self.global_cap = global_cap
        self._per_subject: dict[str, int] = {}
        self._total = 0
        self._lock = threading.Lock()

    def acquire(self, subject: str, cap: int) -> bool:
        """Take a slot for ``subject`` if it has fewer than ``cap`` and the gate has room."""
        with self._lock:
            held = self._per_subject.get(subject, 0)
            if held >= cap or self._total >= self.global_cap:
                return False
            self._per_subject[subject] = held + 1
            self._total += 1
            return True

    def release(self, subject: str) -> None:
        """Give back a slot taken by :meth:`acquire`; releasing one not held is a bug."""
        with self._lock:
            held = self._per_subject.get(subject, 0)
            if held <= 0:
                raise ValueError(f"release without acquire for {subject!r}")
            if held == 1:
                del self._per_subject[subject]
            else:
                self._per_subject[subject] = held - 1
            self._total -= 1

    def in_flight(self, subject: str | None = None) -> int:
        """Requests in flight for ``subject``, or for everyone."""
        with self._lock:
            return self._total if subject is None else self._per_subject.get(subject, 0)


class ProjectRowQuota:
    """Rows per project per UTC day, each project capped by its policy's ``rows_per_day``."""

    def __init__(self, *, now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._now = now
        self._day = now().date()
        self._used: dict[str, int] = {}
        self._lock = threading.Lock()

    def charge(self, project: str, rows: int, limits: Limits) -> bool:
        """Count ``rows`` if they fit in today's quota; False, counting nothing, if not."""
        with self._lock:
            today = self._now().date()
            if today != self._day:
                self._day, self._used = today, {}
            used = self._used.get(project, 0)
            if used + rows > limits.rows_per_day:
                return False
            self._used[project] = used + rows
            return True

    def seconds_to_reset(self) -> int:
        return seconds_to_utc_midnight(self._now())


def seconds_to_utc_midnight(now: datetime) -> int:
    """Whole seconds (at least 1) from ``now`` until the next UTC day, when quotas reset."""
    midnight = datetime.combine(now.date(), datetime.min.time(), UTC) + timedelta(days=1)
    return max(1, math.ceil((midnight - now).total_seconds()))
