"""Whatever a caller sends, the event that records it can be stored: jsonb refuses the escape
of NUL and of a lone surrogate, and a text column refuses NUL, so both are escaped (never
dropped) by every writer, and the chain still verifies."""

from __future__ import annotations

import json

import psycopg2

from mlsec_platform.audit.chain import AuditLog, payload_json, storable_text
from mlsec_platform.ops.audit_verify import verify_audit_log
from mlsec_platform_tests.helpers import audit_head, pg_login

POISON = {
    "path": "/a\x00b",
    "key\x00": "lone \ud800 high",
    "nested": [{"low": "\udc80"}, "paired \U0001f600 stays", "literal \\u0000 text stays"],
}


def test_unstorable_characters_are_escaped_in_place_and_the_rest_is_untouched() -> None:
    stored = json.loads(payload_json(POISON))
    assert stored == {
        "path": "/a\\u0000b",
        "key\\u0000": "lone \\ud800 high",
        "nested": [{"low": "\\udc80"}, "paired \U0001f600 stays", "literal \\u0000 text stays"],
    }
    assert payload_json({"plain": "text"}) == json.dumps({"plain": "text"}, sort_keys=True)
    assert storable_text("run\x00\ud800") == "run\\u0000\\ud800"
    assert storable_text("plain") == "plain"


def test_every_writer_stores_nul_and_lone_surrogates(settings, endpoints, superuser_dsn) -> None:
    conn, login = pg_login("pipeline", "audit-writer", settings, endpoints)
    log = AuditLog(lambda: conn, actor="pipeline")
    before = audit_head(superuser_dsn)
    try:
        log.emit("test.poison\x00", POISON, run_id="run\x00\udfff")
    finally:
        log.close()
        login.revoke()
    with psycopg2.connect(**superuser_dsn) as owner, owner.cursor() as cur:
        cur.execute(
            "SELECT event_type, run_id, payload FROM audit.events WHERE seq > %s", (before,)
        )
        [(event_type, run_id, payload)] = cur.fetchall()
    owner.close()
    assert (event_type, run_id) == ("test.poison\\u0000", "run\\u0000\\udfff")
    assert payload["path"] == "/a\\u0000b" and payload["key\\u0000"] == "lone \\ud800 high"
    report = verify_audit_log(settings)
    assert report.ok, report.broken
