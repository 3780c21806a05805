"""A cache of values that may be at most ``ttl_seconds`` old, re-read before they expire.

The lineage of a dataset's latest materialization and its erasure cut are on every answer's
path. Re-read only once expired, each costs a round trip (Postgres, S3) to the one request that
finds it so: one request per second and dataset, which at a few hundred requests a second is
the latency tail (measured with ``bench/broker.py``). So an entry in the last quarter of its
lifetime is re-read on a thread of its own while requests keep using it, and the re-read
replaces it: a quarter of the TTL leaves a loaded machine time for the read, and re-reads come
4/3 as often as expiries did (at half, twice). An entry past its lifetime (no request came in
its last quarter, or the re-read failed) is read on the request's path, as before, and its
errors are the request's. No answer is ever based on an entry older than ``ttl_seconds``,
counted from when its read began.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

#: The part of an entry's lifetime after which a request starts its re-read.
REFRESH_AT = 0.75

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class RefreshAhead(Generic[K, V]):
    """Values by key, each at most ``ttl_seconds`` old (see the module). Thread-safe."""

    def __init__(
        self,
        ttl_seconds: float,
        name: str,
        *,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ttl = ttl_seconds
        self._name = name
        self._max_entries = max_entries
        self._clock = clock
        self._entries: dict[K, tuple[float, V]] = {}  # key -> (when its read began, value)
        self._refreshing: set[K] = set()
        self._closed = False
        self._lock = threading.Lock()

    def get(self, key: K, read: Callable[[], V]) -> V:
        """The value of ``key``: the held one while younger than the TTL (re-read in the
        background in its last quarter), else ``read()`` now."""
        now = self._clock()
        held = self._entries.get(key)
        if held is not None and now - held[0] < self._ttl:
            if now - held[0] >= self._ttl * REFRESH_AT:
                self._refresh(key, read)
            return held[1]
        return self._store(key, now, read())

    def peek(self, key: K) -> V | None:
        """The held value of ``key`` if younger than the TTL; never reads."""
        held = self._entries.get(key)
        if held is not None and self._clock() - held[0] < self._ttl:
            return held[1]
        return None

    def close(self) -> None:
        """Forget every value and start no more re-reads (e.g. their login is given back)."""
        with self._lock:
            self._closed = True
            self._entries.clear()

    def _store(self, key: K, read_at: float, value: V) -> V:
        with self._lock:
            held = self._entries.get(key)
            if held is None or held[0] <= read_at:  # a slower, older read never wins
                if held is None and len(self._entries) >= self._max_entries:
                    self._entries.clear()
                self._entries[key] = (read_at, value)
        return value

    def _refresh(self, key: K, read: Callable[[], V]) -> None:
        with self._lock:
            if self._closed or key in self._refreshing:
                return
            self._refreshing.add(key)
        threading.Thread(
            target=self._reread, args=(key, read), name=f"refresh-{self._name}", daemon=True
        ).start()

    def _reread(self, key: K, read: Callable[[], V]) -> None:
        try:
            began = self._clock()
            self._store(key, began, read())
        except Exception as exc:  # noqa: BLE001 - the entry expires; a request then reads it
            log.warning("%s: re-reading %s failed: %s", self._name, key, type(exc).__name__)
        finally:
            with self._lock:
                self._refreshing.discard(key)
