"""The request envelope's parts on their own: the limiter per address, the folding of
identical refusals, and the body cap."""

from __future__ import annotations

import asyncio

import pytest

from mlsec_platform.serving.envelope import (
    BodyTooLarge,
    CappedReceive,
    ClientLimiter,
    RefusalFolder,
    declared_length,
)


def test_an_address_is_held_once_its_refusals_are_spent_and_earns_them_back() -> None:
    limiter = ClientLimiter(burst=3, rate=50.0)
    for _ in range(3):
        assert limiter.retry_after("10.0.0.1") is None
        limiter.charge("10.0.0.1")
    wait = limiter.retry_after("10.0.0.1")
    assert wait is not None and 0 < wait <= 1 / 50
    assert limiter.retry_after("10.0.0.2") is None  # another address is not affected
    asyncio.run(asyncio.sleep(0.05))
    assert limiter.retry_after("10.0.0.1") is None


def test_a_limiter_forgets_addresses_that_are_whole_again() -> None:
    limiter = ClientLimiter(burst=2, rate=1e6, max_clients=10)
    for i in range(50):
        limiter.charge(f"10.0.1.{i}")
    assert len(limiter._buckets) <= 11


def test_burst_zero_switches_the_limit_off() -> None:
    limiter = ClientLimiter(burst=0, rate=1.0)
    for _ in range(100):
        limiter.charge("10.0.0.1")
    assert limiter.retry_after("10.0.0.1") is None


def _folder(window: float, max_count: int = 1_000, fail: bool = False):
    written: list[dict] = []

    async def record(event: dict) -> str:
        await asyncio.sleep(0.01)  # a commit
        if fail:
            raise RuntimeError("audit log down")
        written.append(event)
        return f"event-{len(written)}"

    return RefusalFolder(record, window=window, max_count=max_count), written


def test_identical_refusals_in_a_window_are_one_counted_event() -> None:
    folder, written = _folder(window=0.05)

    async def flood() -> list[str]:
        same = [folder.record("k", {"request_id": f"r{i}", "status": 401}) for i in range(10)]
        other = folder.record("other", {"request_id": "o", "status": 404})
        return await asyncio.gather(*same, other)

    ids = asyncio.run(flood())
    assert len(set(ids[:10])) == 1 and ids[10] != ids[0]  # one event for the ten
    assert len(written) == 2
    [event] = [e for e in written if e["status"] == 401]
    assert event["request_id"] == "r0" and event["last_request_id"] == "r9"
    assert event["count"] == 10 and event["window_seconds"] == 0.05


def test_a_full_window_is_written_at_once_and_the_next_opens() -> None:
    folder, written = _folder(window=60.0, max_count=4)

    async def flood() -> list[str]:
        return await asyncio.gather(*(folder.record("k", {"request_id": i}) for i in range(8)))

    asyncio.run(asyncio.wait_for(flood(), timeout=5))  # not the 60 s window
    assert [e["count"] for e in written] == [4, 4]


def test_no_window_records_each_refusal_alone() -> None:
    folder, written = _folder(window=0)

    async def two() -> list[str]:
        return await asyncio.gather(*(folder.record("k", {"request_id": i}) for i in range(2)))

    asyncio.run(two())
    assert [e["count"] for e in written] == [1, 1]


def test_every_refusal_of_a_window_fails_with_its_write() -> None:
    folder, _ = _folder(window=0.01, fail=True)

    async def flood() -> list:
        calls = (folder.record("k", {"request_id": i}) for i in range(3))
        return await asyncio.gather(*calls, return_exceptions=True)

    outcomes = asyncio.run(flood())
    assert all(isinstance(o, RuntimeError) for o in outcomes)


def test_the_body_cap_counts_what_arrives() -> None:
    chunks = [b"x" * 600, b"x" * 600]

    async def receive() -> dict:
        return {"type": "http.request", "body": chunks.pop(0), "more_body": bool(chunks)}

    capped = CappedReceive(receive, 1000)

    async def read() -> None:
        await capped()
        with pytest.raises(BodyTooLarge, match="limit of 1000 bytes"):
            await capped()

    asyncio.run(read())
    assert capped.exceeded and BodyTooLarge.http_status == 413
    assert declared_length([(b"Content-Length", b"12")]) == 12
    assert declared_length([(b"content-length", b"x")]) is None
