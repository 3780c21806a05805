"""The refresh-ahead cache: a value is never used past its TTL, it is re-read in the background
in its last quarter (one re-read at a time), and a failed re-read leaves the request that finds
the value expired to read it itself, and fail with it."""

from __future__ import annotations

import threading

import pytest

from broker_api.refresh_ahead import RefreshAhead


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Source:
    """Values 1, 2, 3... one per read; a read may be held until released, or fail."""

    def __init__(self) -> None:
        self.reads = 0
        self.gate = threading.Event()
        self.gate.set()
        self.fail: Exception | None = None

    def read(self) -> int:
        self.gate.wait(10)
        if self.fail is not None:
            raise self.fail
        self.reads += 1
        return self.reads


def rereads_finished() -> None:
    """Wait for the cache's re-read threads (each stores its value after its read returns)."""
    for thread in threading.enumerate():
        if thread.name == "refresh-test":
            thread.join(10)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def cache(clock) -> RefreshAhead[str, int]:
    return RefreshAhead(1.0, "test", clock=clock)


def test_first_three_quarters_of_the_ttl_use_the_held_value(cache, clock) -> None:
    source = Source()
    assert cache.get("k", source.read) == 1
    clock.now += 0.7
    assert cache.get("k", source.read) == 1
    assert source.reads == 1 and cache.peek("k") == 1


def test_in_the_last_quarter_one_background_reread_replaces_it(cache, clock) -> None:
    source = Source()
    cache.get("k", source.read)
    source.gate.clear()  # the re-read waits until released
    clock.now += 0.8
    # Requests keep the held value at once, and only one re-read starts.
    assert [cache.get("k", source.read) for _ in range(5)] == [1, 1, 1, 1, 1]
    source.gate.set()
    rereads_finished()
    assert source.reads == 2 and cache.get("k", source.read) == 2
    clock.now += 0.7  # the new value is young: no re-read
    assert cache.get("k", source.read) == 2 and source.reads == 2


def test_past_the_ttl_the_caller_reads_and_its_error_is_the_callers(cache, clock) -> None:
    source = Source()
    cache.get("k", source.read)
    clock.now += 1.0
    assert cache.peek("k") is None
    assert cache.get("k", source.read) == 2  # read on the caller's path
    clock.now += 1.0
    source.fail = ConnectionError("the store is down")
    with pytest.raises(ConnectionError):
        cache.get("k", source.read)


def test_a_failed_reread_never_stretches_the_ttl(cache, clock) -> None:
    source = Source()
    cache.get("k", source.read)
    source.fail = ConnectionError("the store is down")
    clock.now += 0.8
    assert cache.get("k", source.read) == 1  # still young enough; the re-read fails behind it
    rereads_finished()
    clock.now += 0.2  # one TTL after the only read that succeeded
    with pytest.raises(ConnectionError):
        cache.get("k", source.read)


def test_an_older_read_never_replaces_a_newer_one(cache, clock) -> None:
    slow, fast = Source(), Source()
    fast.reads = 9
    cache.get("k", slow.read)
    slow.gate.clear()
    clock.now += 0.8
    cache.get("k", slow.read)  # a re-read begins now, and is held
    clock.now += 0.3  # expired: the caller reads, and finishes first
    assert cache.get("k", fast.read) == 10
    slow.gate.set()
    rereads_finished()
    assert slow.reads == 2 and cache.peek("k") == 10
    clock.now += 0.99
    assert cache.peek("k") == 10


def test_a_closed_cache_starts_no_reread(cache, clock) -> None:
    source = Source()
    cache.get("k", source.read)
    cache.close()
    assert cache.peek("k") is None
    cache.get("k", source.read)  # read on the caller's path
    clock.now += 0.8
    assert cache.get("k", source.read) == 2
    rereads_finished()
    assert source.reads == 2  # no re-read in the background
