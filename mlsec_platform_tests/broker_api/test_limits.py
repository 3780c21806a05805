"""Rate limits, concurrency gate and row quota, on an injected clock (no servers)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest

from broker_api.limits import ConcurrencyGate, Limits, ProjectRowQuota, RateLimiter
from broker_api.principal import Principal
from mlsec_platform.catalog.governance import Purpose, Sensitivity


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def who(subject: str = "alice", project: str = "churn") -> Principal:
    return Principal(subject, ("analysts",), project, Purpose.ANALYTICS, Sensitivity.INTERNAL)


# 60/min = 1 token/s per subject, burst 3; the project is roomy unless a test says otherwise.
LIMITS = Limits(requests_per_minute=60, burst=3, project_requests_per_minute=6_000)


def test_burst_then_retry_after_then_refill() -> None:
    clock = Clock()
    rl = RateLimiter(clock=clock)
    assert [rl.check(who(), LIMITS) for _ in range(3)] == [None, None, None]
    assert rl.check(who(), LIMITS) == 1.0
    clock.now += 0.5
    assert rl.check(who(), LIMITS) == 1.0  # 0.5 s to go, rounded up
    clock.now += 0.5
    assert rl.check(who(), LIMITS) is None
    assert rl.check(who(), LIMITS) == 1.0
    clock.now += 100  # refills to the burst, never above it
    assert [rl.check(who(), LIMITS) for _ in range(4)] == [None, None, None, 1.0]


def test_retry_after_rounds_up_to_whole_seconds() -> None:
    clock = Clock()
    rl = RateLimiter(clock=clock)
    slow = Limits(requests_per_minute=6, burst=1, project_requests_per_minute=6_000)
    assert rl.check(who(), slow) is None
    assert rl.check(who(), slow) == 10.0
    clock.now += 7.5
    assert rl.check(who(), slow) == 3.0


def test_subjects_have_their_own_buckets() -> None:
    rl = RateLimiter(clock=Clock())
    for _ in range(3):
        assert rl.check(who("alice"), LIMITS) is None
    assert rl.check(who("alice"), LIMITS) is not None
    assert rl.check(who("bob"), LIMITS) is None


def test_project_bucket_is_shared_and_holds_max_of_burst_and_ten_seconds() -> None:
    clock = Clock()
    rl = RateLimiter(clock=clock)
    # Project: 60/min (1/s), capacity max(burst=2, 60/6=10) = 10, across many subjects.
    lim = Limits(requests_per_minute=600, burst=2, project_requests_per_minute=60)
    allowed = [rl.check(who(f"s{i}"), lim) for i in range(12)]
    assert allowed[:10] == [None] * 10
    assert allowed[10:] == [1.0, 1.0]
    assert rl.check(who("s0", "other"), lim) is None  # another project is unaffected


def test_a_refusal_takes_no_token_from_either_bucket() -> None:
    clock = Clock()
    rl = RateLimiter(clock=clock)
    lim = Limits(requests_per_minute=60, burst=1, project_requests_per_minute=0)
    # Project rate 0: capacity max(1, 0) = 1, never refills.
    assert rl.check(who("a"), lim) is None
    assert rl.check(who("b"), lim) is not None  # project empty: b's own token must be kept
    roomy = Limits(requests_per_minute=60, burst=1, project_requests_per_minute=6_000)
    assert rl.check(who("b", "other"), roomy) is None


def test_idle_buckets_are_evicted() -> None:
    clock = Clock()
    rl = RateLimiter(clock=clock, sweep_seconds=60)
    for i in range(5_000):
        assert rl.check(who(f"user{i}", f"p{i % 7}"), LIMITS) is None
    assert len(rl) == 5_000 + 7
    clock.now += 61  # every bucket has refilled: the next check sweeps them
    assert rl.check(who("late"), LIMITS) is None
    assert len(rl) == 2


def test_busy_buckets_survive_the_sweep() -> None:
    clock = Clock()
    rl = RateLimiter(clock=clock, sweep_seconds=1)
    slow = Limits(requests_per_minute=1, burst=2, project_requests_per_minute=6_000)
    assert rl.check(who(), slow) is None
    assert rl.check(who(), slow) is None
    clock.now += 2  # swept, but alice's bucket is far from full: she stays limited
    assert rl.check(who("bob"), slow) is None
    assert rl.check(who(), slow) is not None


def test_key_count_is_capped() -> None:
    rl = RateLimiter(clock=Clock(), max_keys=100)
    for i in range(1_000):
        rl.check(who(f"user{i}"), LIMITS)
    assert len(rl) <= 101


def test_check_is_thread_safe() -> None:
    rl = RateLimiter()
    lim = Limits(requests_per_minute=0, burst=500, project_requests_per_minute=0)
    allowed = []
    lock = threading.Lock()

    def hammer() -> None:
        mine = sum(rl.check(who(), lim) is None for _ in range(300))
        with lock:
            allowed.append(mine)

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(allowed) == 500


def test_gate_caps_per_subject_and_globally() -> None:
    gate = ConcurrencyGate(global_cap=3)
    assert gate.acquire("a", 2) and gate.acquire("a", 2)
    assert not gate.acquire("a", 2)
    assert gate.acquire("b", 2)
    assert not gate.acquire("c", 2)  # global cap reached
    assert gate.in_flight() == 3 and gate.in_flight("a") == 2
    gate.release("a")
    assert gate.acquire("c", 2)
    for s in ("a", "b", "c"):
        gate.release(s)
    assert gate.in_flight() == 0
    with pytest.raises(ValueError):
        gate.release("a")


def test_gate_slot_releases_on_error() -> None:
    gate = ConcurrencyGate()
    with gate.slot("a", 1) as ok:
        assert ok
        with gate.slot("a", 1) as again:
            assert not again
    with pytest.raises(RuntimeError), gate.slot("a", 1) as ok:
        assert ok
        raise RuntimeError("boom")
    assert gate.in_flight("a") == 0


def test_gate_is_thread_safe() -> None:
    gate = ConcurrencyGate(global_cap=1_000)
    peak = []
    lock = threading.Lock()

    def work() -> None:
        for _ in range(2_000):
            with gate.slot("a", 2) as ok:
                if ok:
                    n = gate.in_flight("a")
                    with lock:
                        peak.append(n)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert max(peak) <= 2 and gate.in_flight() == 0


def test_row_quota_per_project_per_utc_day() -> None:
    now = [datetime(2024, 5, 1, 23, 59, 30, tzinfo=UTC)]
    quota = ProjectRowQuota(now=lambda: now[0])
    limits = Limits(rows_per_day=1_000)
    assert quota.charge("churn", 600, limits)
    assert not quota.charge("churn", 500, limits)  # would exceed: nothing counted
    assert quota.charge("churn", 400, limits)
    assert not quota.charge("churn", 1, limits)
    assert quota.charge("other", 1_000, limits)
    assert quota.seconds_to_reset() == 30
    now[0] = datetime(2024, 5, 2, 0, 0, 1, tzinfo=UTC)
    assert quota.charge("churn", 1_000, limits)
