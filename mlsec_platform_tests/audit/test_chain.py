"""The audit log is append-only and every tampering by the database owner is detected."""

import threading
import uuid
from contextlib import closing

import psycopg2
import pytest
from click.testing import CliRunner
from psycopg2 import errors

from mlsec_platform.audit.chain import AuditLog, verify_chain
from mlsec_platform.cli import main
from mlsec_platform.ops.audit_verify import verify_audit_log
from mlsec_platform_tests.helpers import pg_login


@pytest.fixture
def owner(superuser_dsn):
    """The database owner (superuser): the one who could tamper."""
    with closing(psycopg2.connect(**superuser_dsn)) as conn:
        conn.autocommit = True
        yield conn


def _verify_cli() -> tuple[int, str]:
    result = CliRunner().invoke(main, ["audit", "verify"])
    return result.exit_code, result.output


def test_concurrent_appends_form_one_chain(audit_writer, settings):
    before = verify_audit_log(settings)
    assert before.ok

    def append(n: int) -> None:
        for i in range(25):  # one shared writer, used from four threads
            audit_writer.emit("test.concurrent", {"thread": n, "i": i})

    threads = [threading.Thread(target=append, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    after = verify_audit_log(settings)
    assert after.ok
    assert after.events == before.events + 100


def test_parallel_writers_on_separate_connections(settings, endpoints):
    before = verify_audit_log(settings).events
    logs = []

    def append() -> None:
        conn, login = pg_login("pipeline", "audit-writer", settings, endpoints)
        log = AuditLog(lambda: conn, actor="pipeline")
        logs.append((log, login))
        for i in range(20):
            log.emit("test.parallel", {"i": i})

    threads = [threading.Thread(target=append) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    report = verify_audit_log(settings)
    assert report.ok and report.events == before + 60
    for log, login in logs:
        log.close()
        login.revoke()


def test_the_table_refuses_update_delete_truncate_even_from_the_owner(owner):
    with owner.cursor() as cur:
        for statement in (
            "UPDATE audit.events SET actor = 'mallory' WHERE seq = 1",
            "DELETE FROM audit.events WHERE seq = 1",
            "TRUNCATE audit.events",
        ):
            with pytest.raises(errors.InsufficientPrivilege, match="append-only"):
                cur.execute(statement)


def _row(cur, seq: int) -> tuple:
    cur.execute(
        "SELECT seq, event_id, occurred_at, event_type, actor, run_id, payload::text, "
        "prev_hash, hash FROM audit.events WHERE seq = %s",
        (seq,),
    )
    return cur.fetchone()


def _restore(cur, row: tuple) -> None:
    cur.execute("DELETE FROM audit.events WHERE seq = %s", (row[0],))
    cur.execute(
        "INSERT INTO audit.events (seq, event_id, occurred_at, event_type, actor, run_id, "
        "payload, prev_hash, hash) VALUES (%s, %s, %s, %s, %s, %s, %s::jsonb, %s, %s)",
        row,
    )


@pytest.mark.parametrize(
    "tamper",
    [
        "UPDATE audit.events SET payload = payload || '{\"rows\": 0}' WHERE seq = %(seq)s",
        "UPDATE audit.events SET actor = 'someone-else' WHERE seq = %(seq)s",
        "UPDATE audit.events SET occurred_at = occurred_at - interval '1 day' WHERE seq = %(seq)s",
        "DELETE FROM audit.events WHERE seq = %(seq)s",
    ],
    ids=["payload", "actor", "backdate", "delete"],
)
def test_tampering_by_the_owner_is_detected(tamper, owner, audit_writer, settings):
    for i in range(5):
        audit_writer.emit("test.tamper-target", {"i": i})
    assert _verify_cli()[0] == 0
    with owner.cursor() as cur:
        cur.execute("SELECT max(seq) FROM audit.events")
        seq = cur.fetchone()[0] - 2
        original = _row(cur, seq)
        cur.execute("ALTER TABLE audit.events DISABLE TRIGGER USER")
        try:
            cur.execute(tamper, {"seq": seq})
            code, output = _verify_cli()
            assert code == 1
            assert f"BROKEN at event #{seq}" in output
        finally:
            _restore(cur, original)
            cur.execute("ALTER TABLE audit.events ENABLE TRIGGER USER")
    assert _verify_cli()[0] == 0


def test_rewriting_the_whole_tail_is_caught_by_the_anchor(
    owner, audit_writer, settings, superuser_dsn
):
    """An owner who recomputes every hash after an edit still differs from the OpenBao anchor."""
    for i in range(3):
        audit_writer.emit("test.anchor", {"i": i})
    anchored = verify_audit_log(settings)  # anchors the head in OpenBao
    with owner.cursor() as cur:
        tail = [_row(cur, s) for s in range(anchored.head_seq - 2, anchored.head_seq + 1)]
        cur.execute("ALTER TABLE audit.events DISABLE TRIGGER USER")
        try:
            # Truncate the last two events: the remaining chain is internally consistent.
            cur.execute("DELETE FROM audit.events WHERE seq > %s", (anchored.head_seq - 2,))
            with closing(psycopg2.connect(**superuser_dsn)) as c:
                assert verify_chain(c).ok  # consistent on its own...
            code, output = _verify_cli()
            assert code == 1 and "truncated" in output  # ...but not with the anchor
        finally:
            cur.execute("DELETE FROM audit.events WHERE seq >= %s", (tail[0][0],))
            for row in tail:
                _restore(cur, row)
            cur.execute("ALTER TABLE audit.events ENABLE TRIGGER USER")
    assert _verify_cli()[0] == 0


def test_secrets_are_refused_in_payloads(audit_writer):
    with pytest.raises(ValueError, match="looks like a secret"):
        audit_writer.emit("test.bad", {"secret_access_key": "x"})
    with pytest.raises(ValueError, match="looks like a secret"):
        audit_writer.emit("test.bad", {"nested": {"password": "x"}})


def test_every_event_gets_a_unique_id(audit_writer):
    ids = {audit_writer.emit("test.id", {"n": n}) for n in range(10)}
    assert len(ids) == 10
    assert all(uuid.UUID(i) for i in ids)
