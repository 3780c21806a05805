"""The broker's audit sink on the real audit log: group commit on the event loop, fail closed."""

from __future__ import annotations

import asyncio

import psycopg2
import pytest

from broker_api.audit import EVENT_TYPE, AuditSink, AuditUnavailable
from mlsec_platform.ops.audit_verify import verify_audit_log
from mlsec_platform.resources.leased_login import LeasedLogin
from mlsec_platform_tests.helpers import audit_events, audit_head, vault_as


def _login(settings, endpoints) -> LeasedLogin:
    return LeasedLogin(vault_as("broker", settings, endpoints), "audit-writer", margin_seconds=0)


def _sink(settings, endpoints, login: LeasedLogin | None = None, **kwargs) -> AuditSink:
    login = login or _login(settings, endpoints)

    async def connect():
        return login.connect(
            endpoints.postgres_host, endpoints.postgres_port, settings.warehouse_db, async_=True
        )

    return AuditSink(connect, actor="broker", **kwargs)


def test_concurrent_requests_share_commits_and_every_event_lands_once(
    settings, endpoints, superuser_dsn
):
    sink = _sink(settings, endpoints, max_batch=16)
    before = audit_head(superuser_dsn)

    async def requests() -> list[str]:
        return await asyncio.gather(
            *(sink.arecord({"request_id": f"sink-{i}", "status": 200}) for i in range(100))
        )

    try:
        ids = asyncio.run(requests())
        again = asyncio.run(requests())  # a new event loop, the same sink and connection
    finally:
        sink.close()
    recorded = audit_events(superuser_dsn, EVENT_TYPE, before)
    assert len(set(ids + again)) == 200
    assert sorted(e["request_id"] for e in recorded) == sorted(
        [f"sink-{i}" for i in range(100)] * 2
    )
    # 100 events queued at once go out in batches of at most 16: 7 statements, not 100.
    assert 14 <= sink.batches <= 20
    assert verify_audit_log(settings).ok


def test_an_idle_sink_sends_at_once_and_batches_what_queues_behind(
    settings, endpoints, superuser_dsn
):
    """The first event leaves in the turn it was submitted (no task hop before the INSERT);
    the 20 submitted while it is in flight go out together in the next statement."""
    sink = _sink(settings, endpoints)

    async def burst() -> tuple[int, list[str]]:
        await sink.arecord({"request_id": "warm-up"})  # connected
        loop = asyncio.get_running_loop()
        before = sink.batches
        futures = [loop.create_future() for _ in range(21)]
        for i, future in enumerate(futures):  # one loop turn, as from call_soon_threadsafe
            sink.submit({"request_id": f"turn-{i}"}, future)
        return before, await asyncio.gather(*futures)

    head = audit_head(superuser_dsn)
    try:
        before, ids = asyncio.run(burst())
    finally:
        sink.close()
    assert len(set(ids)) == 21
    assert sink.batches - before == 2  # the first alone, then the other 20 in one INSERT
    recorded = audit_events(superuser_dsn, EVENT_TYPE, head)
    assert sorted(e["request_id"] for e in recorded) == sorted(
        ["warm-up", *(f"turn-{i}" for i in range(21))]
    )
    assert verify_audit_log(settings).ok


def test_an_event_that_names_a_secret_is_refused_without_writing(
    settings, endpoints, superuser_dsn
):
    sink = _sink(settings, endpoints)
    before = audit_head(superuser_dsn)
    with pytest.raises(AuditUnavailable, match="looks like a secret"):
        asyncio.run(sink.arecord({"request_id": "x", "bearer_token": "abc"}))
    assert audit_head(superuser_dsn) == before and sink.batches == 0


def test_an_unreachable_log_fails_every_waiting_request_and_recovers():
    failures: list[int] = []
    target = {"port": 1}

    async def connect():
        return psycopg2.connect(host="127.0.0.1", port=target["port"], dbname="x", async_=True)

    sink = AuditSink(connect, actor="broker", on_failure=lambda: failures.append(1))

    async def two() -> list:
        return await asyncio.gather(
            sink.arecord({"request_id": "lost-1"}),
            sink.arecord({"request_id": "lost-2"}),
            return_exceptions=True,
        )

    outcomes = asyncio.run(two())
    assert all(isinstance(o, AuditUnavailable) for o in outcomes), outcomes
    assert "audit log unavailable" in str(outcomes[0])
    assert failures and sink.batches == 0


def test_a_session_lost_between_events_fails_that_event_then_reconnects(
    settings, endpoints, superuser_dsn
):
    login = _login(settings, endpoints)
    failures: list[int] = []
    sink = _sink(settings, endpoints, login, on_failure=lambda: failures.append(1))
    head = audit_head(superuser_dsn)

    async def around_a_drop() -> list:
        outcomes = [await sink.arecord({"request_id": "before-drop"})]
        # The server ends the sink's session (a restart, a failover, an operator).
        with psycopg2.connect(**superuser_dsn) as conn, conn.cursor() as cur:
            cur.execute(
                "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity WHERE usename = %s",
                (login.current().data["username"],),
            )
            assert cur.fetchall() == [(True,)]
        for request_id in ("during-drop", "after-drop"):
            try:
                outcomes.append(await sink.arecord({"request_id": request_id}))
            except AuditUnavailable as exc:
                outcomes.append(exc)
        return outcomes

    try:
        before, during, after = asyncio.run(around_a_drop())
    finally:
        sink.close()
    assert isinstance(during, AuditUnavailable) and "audit log unavailable" in str(during)
    assert failures == [1] and isinstance(before, str) and isinstance(after, str)
    recorded = audit_events(superuser_dsn, EVENT_TYPE, head)
    assert [e["request_id"] for e in recorded] == ["before-drop", "after-drop"]
    assert verify_audit_log(settings).ok


def test_a_loop_that_closes_mid_statement_leaves_a_working_sink(settings, endpoints, superuser_dsn):
    sink = _sink(settings, endpoints)
    head = audit_head(superuser_dsn)

    async def leave_mid_statement() -> asyncio.Future:
        await sink.arecord({"request_id": "connected"})
        cut_off = asyncio.get_running_loop().create_future()
        sink.submit({"request_id": "cut-off"}, cut_off)  # on the wire, never waited for
        return cut_off

    try:
        cut_off = asyncio.run(leave_mid_statement())  # the loop closes with it in flight
        assert not cut_off.done() or isinstance(cut_off.exception(), AuditUnavailable)
        after = asyncio.run(sink.arecord({"request_id": "next-loop"}))
    finally:
        sink.close()
    assert isinstance(after, str)
    recorded = [e["request_id"] for e in audit_events(superuser_dsn, EVENT_TYPE, head)]
    # Whether the cut-off INSERT committed is the server's business; the next one always does.
    assert recorded[0] == "connected" and recorded[-1] == "next-loop"
    assert set(recorded) <= {"connected", "cut-off", "next-loop"}
    assert verify_audit_log(settings).ok


def test_too_many_waiting_events_are_refused(settings, endpoints):
    sink = _sink(settings, endpoints, max_waiting=3)

    async def burst() -> list:
        return await asyncio.gather(
            *(sink.arecord({"request_id": f"burst-{i}"}) for i in range(5)),
            return_exceptions=True,
        )

    try:
        outcomes = asyncio.run(burst())
    finally:
        sink.close()
    refused = [o for o in outcomes if isinstance(o, AuditUnavailable)]
    assert len(refused) == 2 and "too many" in str(refused[0])


def test_a_failing_login_fails_the_request_instead_of_hanging():
    async def connect():
        raise RuntimeError("vault sealed")  # e.g. no database login could be issued

    sink = AuditSink(connect, actor="broker")
    with pytest.raises(AuditUnavailable, match="vault sealed"):
        asyncio.run(asyncio.wait_for(sink.arecord({"request_id": "r"}), timeout=10))


def _one_turn(sink: AuditSink, payloads: list[dict]) -> list:
    """Submit ``payloads`` in one loop turn after a warm-up, so they share one INSERT."""

    async def turn() -> list:
        await sink.arecord({"request_id": "warm-up"})
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in payloads]
        for payload, future in zip(payloads, futures, strict=True):
            sink.submit(payload, future)
        return await asyncio.gather(*futures, return_exceptions=True)

    return asyncio.run(turn())


def test_nul_and_lone_surrogates_do_not_make_a_batch_unwritable(settings, endpoints, superuser_dsn):
    sink = _sink(settings, endpoints)
    head = audit_head(superuser_dsn)
    try:
        outcomes = _one_turn(
            sink,
            [
                {"request_id": "before"},
                {"request_id": "nul", "path": "/\x00", "reason": "at body.\x00"},
                {"request_id": "surrogate", "\ud800": "\udc80"},
                {"request_id": "after"},
            ],
        )
    finally:
        sink.close()
    assert all(isinstance(o, str) for o in outcomes), outcomes
    recorded = {e["request_id"]: e for e in audit_events(superuser_dsn, EVENT_TYPE, head)}
    assert set(recorded) == {"warm-up", "before", "nul", "surrogate", "after"}
    assert recorded["nul"]["path"] == "/\\u0000"
    assert recorded["surrogate"]["\\ud800"] == "\\udc80"
    assert verify_audit_log(settings).ok


def test_an_event_the_database_refuses_fails_only_itself(
    settings, endpoints, superuser_dsn, monkeypatch
):
    """A group INSERT is all or nothing: when the database refuses one of its events (here an
    event whose JSON it cannot parse), the group is written again one event at a time."""
    import broker_api.audit as audit_module
    from mlsec_platform.audit.chain import payload_json

    monkeypatch.setattr(
        audit_module,
        "payload_json",
        lambda value: "{not json" if value.get("poison") else payload_json(value),
    )
    failures: list[int] = []
    sink = _sink(settings, endpoints, on_failure=lambda: failures.append(1))
    head = audit_head(superuser_dsn)
    try:
        outcomes = _one_turn(
            sink,
            [{"request_id": "one"}, {"request_id": "bad", "poison": True}, {"request_id": "two"}],
        )
        after = asyncio.run(sink.arecord({"request_id": "next"}))
    finally:
        sink.close()
    one, bad, two = outcomes
    assert isinstance(one, str) and isinstance(two, str) and isinstance(after, str)
    assert isinstance(bad, AuditUnavailable) and "audit event refused" in str(bad)
    recorded = [e["request_id"] for e in audit_events(superuser_dsn, EVENT_TYPE, head)]
    assert sorted(recorded) == ["next", "one", "two", "warm-up"]
    assert failures == [1]
    assert verify_audit_log(settings).ok
