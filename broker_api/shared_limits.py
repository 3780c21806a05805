"""Rate limits, the daily row quota and the concurrency cap, shared by every broker replica.

The counters live in PostgreSQL (:mod:`mlsec_platform.serving.counters`), so two replicas
enforce one per-subject rate, one per-project quota and one per-subject concurrency cap, and a
restart does not reset the day's quota. A round trip costs 0.3-1 ms here, more than the rest
of the limits' work, so each replica leases in batches and the accepted path of a request
seldom leaves the process:

- rate: a replica takes up to about a second's worth of tokens (at most a quarter of the
  bucket) from both the subject's and the project's shared buckets at once, and spends them
  locally for at most :data:`TOKEN_LEASE_SECONDS`; a token it did not spend is lost, which can
  only make the limit stricter, never looser;
- quota: a replica reserves 1% of the project's daily rows at a time (exactly what a page needs
  when the quota is under 100 rows) and gives back what it did not use when it closes; one that
  dies keeps at most that 1% from being returned that day;
- concurrency: a replica holds the in-flight slots it took; while at least half of the
  subject's cap was free when it took one, it keeps a slot it no longer uses for
  :data:`SLOT_LINGER_SECONDS` (the next request of that subject needs no round trip); nearer
  the cap it gives it back as the request ends, so a spare slot never keeps another replica
  from a slot the subject needs for long. Slots are renewed every second and expire
  :data:`SLOT_TTL_SECONDS` after the replica stops renewing (it died).

When the counters cannot be reached no request is served (503): limits fail closed.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, date, datetime

from broker_api.errors import RequestRefused
from broker_api.limits import (
    ConcurrencyGate,
    Limits,
    SlotGate,
    buckets,
    seconds_to_utc_midnight,
)
from broker_api.principal import Principal
from mlsec_platform.serving.counters import CountersUnavailable, SharedCounters

#: How long leased rate tokens may be spent before they lapse (seconds).
TOKEN_LEASE_SECONDS = 1.0
#: How long a replica keeps a spare in-flight slot after its last use (seconds).
SLOT_LINGER_SECONDS = 1.0
#: How long the slots of a replica that stopped renewing them stay counted (seconds).
SLOT_TTL_SECONDS = 15.0


class LimitsUnavailable(RequestRefused):
    """The shared counters do not answer: the broker cannot enforce limits, so it serves
    nothing until they do."""

    http_status = 503

    def __init__(self, reason: str) -> None:
        super().__init__(reason, headers={"Retry-After": "5"})


@contextmanager
def _shared(counters: SharedCounters) -> Iterator[SharedCounters]:
    try:
        yield counters
    except CountersUnavailable as exc:
        raise LimitsUnavailable(str(exc)) from None


def _lease_size(rate_per_second: float, capacity: float) -> int:
    """Tokens to take at once: about a second's worth, at most a quarter of the bucket, so
    that what one replica holds cannot starve another; at least one."""
    return max(1, math.floor(min(capacity / 4.0, rate_per_second * TOKEN_LEASE_SECONDS)))


class SharedRateLimiter:
    """Per-subject and per-project token buckets in the shared counters (see the module).

    Each bucket is leased on its own: a replica's lease of project tokens serves every
    subject of that project here. Leasing per (subject, project) pair spent a lease of project
    tokens on each new subject, so a project's rate ran out after about fifty people asked once.
    """

    def __init__(self, counters: SharedCounters) -> None:
        self._counters = counters
        #: bucket key -> [tokens left, monotonic time they lapse]
        self._leased: dict[str, list[float]] = {}
        self._next_sweep = time.monotonic() + 60.0

    def _spendable(self, key: str, now: float) -> bool:
        lease = self._leased.get(key)
        return lease is not None and lease[0] >= 1.0 and lease[1] > now

    async def admit(self, principal: Principal, limits: Limits) -> float | None:
        """None if ``principal`` may go ahead (one token spent from both its buckets), else the
        whole seconds (at least 1) until a retry can succeed, for ``Retry-After``."""
        keys = (f"subject:{principal.subject}", f"project:{principal.project}")
        for _ in range(3):  # another request may spend a lease while this one waits for more
            now = time.monotonic()
            missing = [i for i, key in enumerate(keys) if not self._spendable(key, now)]
            if not missing:
                for key in keys:  # the loop runs one admit at a time: no lock needed
                    self._leased[key][0] -= 1.0
                return None
            if now >= self._next_sweep:
                self._sweep(now)
            loop = asyncio.get_running_loop()
            granted, wait = await loop.run_in_executor(None, self._take, limits, keys, missing)
            if granted < 1:
                return float(max(1, math.ceil(wait)))
            lapses = time.monotonic() + TOKEN_LEASE_SECONDS
            for i in missing:
                self._leased[keys[i]] = [float(granted), lapses]
        return 1.0  # leases drained by others three times over: the replica is saturated

    def _take(self, limits: Limits, keys: tuple[str, str], missing: list[int]) -> tuple[int, float]:
        buckets_of = buckets(limits)
        rates = [buckets_of[i][0] for i in missing]
        caps = [buckets_of[i][1] for i in missing]
        with _shared(self._counters) as counters:
            return counters.take(
                [keys[i] for i in missing],
                rates,
                caps,
                [_lease_size(r, c) for r, c in zip(rates, caps, strict=True)],
            )

    def _sweep(self, now: float) -> None:
        for key in [k for k, (_, lapses) in self._leased.items() if lapses <= now]:
            del self._leased[key]
        self._next_sweep = now + 60.0

    def __len__(self) -> int:
        """Bucket leases held (subjects' and projects')."""
        return len(self._leased)


class SharedRowQuota:
    """Rows per project per UTC day, each project capped by its policy's ``rows_per_day``,
    counted in the shared counters (see the module)."""

    def __init__(self, counters: SharedCounters) -> None:
        self._counters = counters
        #: project -> (the server's day of the reservation, rows reserved and not yet used)
        self._reserved: dict[str, tuple[date, int]] = {}
        self._lock = threading.Lock()

    def charge(self, project: str, rows: int, limits: Limits) -> bool:
        """Count ``rows`` if they fit in today's quota; False, counting nothing, if not."""
        with self._lock:
            day, held = self._reserved.get(project, (None, 0))
            if day != datetime.now(UTC).date():
                held = 0  # a reservation of an earlier day is spent with its day
            if held >= rows:
                self._reserved[project] = (day, held - rows)
                return True
            want = rows - held + limits.rows_per_day // 100
            with _shared(self._counters) as counters:
                today, granted = counters.reserve_rows(project, limits.rows_per_day, want)
            held = (held if today == day else 0) + granted
            fits = held >= rows
            self._reserved[project] = (today, held - rows if fits else held)
            return fits

    @staticmethod
    def seconds_to_reset() -> int:
        return seconds_to_utc_midnight(datetime.now(UTC))

    def close(self) -> None:
        """Give today's unused reservations back, so other replicas may use them."""
        with self._lock:
            reserved, self._reserved = self._reserved, {}
        for project, (day, held) in reserved.items():
            if held > 0:
                try:
                    self._counters.return_rows(project, day, held)
                except CountersUnavailable:
                    return  # kept from the quota until the day ends: strict, not lenient


class SharedSlots(SlotGate):
    """Requests in flight: per subject across all replicas (shared), and over all subjects in
    this replica (its executor's capacity, :class:`ConcurrencyGate`'s global cap).

    Non-blocking: a request that finds no free slot is refused (429), not queued."""

    def __init__(self, counters: SharedCounters, global_cap: int) -> None:
        self._counters = counters
        self._local = ConcurrencyGate(global_cap)
        #: subject -> shared slots this replica holds
        self._held: dict[str, int] = {}
        self._last_used: dict[str, float] = {}
        #: subjects whose spare slots may linger (half their cap or more was free)
        self._roomy: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._keeper = threading.Thread(target=self._keep, name="broker-slots", daemon=True)
        self._keeper.start()

    def acquire(self, subject: str, cap: int) -> bool:
        if not self._local.acquire(subject, cap):
            return False
        try:
            with self._lock:
                if self._local.in_flight(subject) <= self._held.get(subject, 0):
                    return True
                # One more than this replica holds: ask the other replicas' counts (the lock
                # keeps two threads of this replica from both taking one for one request).
                with _shared(self._counters) as counters:
                    free = counters.acquire_slot(subject, cap, SLOT_TTL_SECONDS)
                if free is not None:
                    self._held[subject] = self._held.get(subject, 0) + 1
                    if 2 * free >= cap:
                        self._roomy.add(subject)
                    else:
                        self._roomy.discard(subject)
                    return True
        except BaseException:
            self._local.release(subject)
            raise
        self._local.release(subject)
        return False

    def release(self, subject: str) -> None:
        self._local.release(subject)
        with self._lock:
            self._last_used[subject] = time.monotonic()
            if subject not in self._roomy:  # near the cap: other replicas may need it now
                # Unreachable counters: the keeper gives it back after the linger instead.
                with suppress(CountersUnavailable):
                    spare = self._held.get(subject, 0) - self._local.in_flight(subject)
                    self._give_back(subject, spare)

    def in_flight(self, subject: str | None = None) -> int:
        return self._local.in_flight(subject)

    def _keep(self) -> None:
        """Every second: give back slots unused for :data:`SLOT_LINGER_SECONDS`, renew the
        rest (a failed round trip is tried again a second later)."""
        while not self._stop.wait(1.0):
            try:
                self.give_back(time.monotonic() - SLOT_LINGER_SECONDS)
                if self._held:
                    self._counters.renew_slots(SLOT_TTL_SECONDS)
            except CountersUnavailable:
                continue

    def give_back(self, idle_since: float) -> None:
        """Return the spare slots of subjects not used since ``idle_since`` (monotonic)."""
        with self._lock:
            spare = {}
            for subject, held in self._held.items():
                unused = held - self._local.in_flight(subject)
                if unused > 0 and self._last_used.get(subject, 0.0) <= idle_since:
                    spare[subject] = unused
            for subject, n in spare.items():
                self._give_back(subject, n)

    def _give_back(self, subject: str, n: int) -> None:
        """Return ``n`` of ``subject``'s slots (the caller holds the lock)."""
        if n <= 0:
            return
        self._counters.release_slots(subject, n)  # counted until this succeeds
        self._held[subject] -= n
        if self._held[subject] == 0:
            del self._held[subject]
            self._last_used.pop(subject, None)
            self._roomy.discard(subject)

    def close(self) -> None:
        self._stop.set()
        self._keeper.join(timeout=5)
        with suppress(CountersUnavailable):  # if not given back, they expire on their own
            self.give_back(float("inf"))
