"""One audit event per request, committed before the answer leaves (fail closed)."""

from __future__ import annotations

from mlsec_platform.identities.tokens import certificate_thumbprint
from mlsec_platform.ops.audit_verify import verify_audit_log
from mlsec_platform_tests.broker_api.conftest import FACT, bearer, post_query
from mlsec_platform_tests.helpers import audit_head, session_client, through_the_gate


def test_every_request_yields_exactly_one_audit_event(http, mint, settings, superuser_dsn) -> None:
    import psycopg2

    before = audit_head(superuser_dsn)
    token = mint("analyst")
    responses = [
        post_query(http, token, limit=3),
        post_query(http, token, dataset="gold/salaries", columns=["x"]),
        post_query(http, "forged"),
        post_query(http, mint("stranger")),
        http.get("/no/such/route"),
        http.get("/catalog/datasets", headers=bearer(token)),
        http.post("/query", content=b"{not json", headers=bearer(token)),
    ]
    ids = [r.headers["X-Request-ID"] for r in responses]
    with psycopg2.connect(**superuser_dsn) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT payload FROM audit.events WHERE event_type = 'broker.request' AND seq > %s",
            (before,),
        )
        events = [row[0] for row in cur.fetchall()]
    conn.close()
    by_id = {}
    for event in events:
        by_id.setdefault(event["request_id"], []).append(event)
    assert all(len(by_id.get(i, [])) == 1 for i in ids), by_id
    allowed = by_id[ids[0]][0]
    assert allowed["outcome"] == "allowed" and allowed["rows"] == 3
    assert allowed["subject"].startswith("analyst") and allowed["policy_version"]
    assert allowed["dataset"] == FACT and allowed["version"] is not None
    assert allowed["columns"] == ["order_id", "order_item_id", "price"]
    assert {by_id[i][0]["status"] for i in ids[1:]} == {404, 401, 403, 400, 200}
    report = verify_audit_log(settings)
    assert report.ok, report.broken


def test_no_answer_leaves_without_its_audit_event(broker, mint, settings) -> None:
    """With the audit log unwritable, an allowed page (sealed on the worker thread) and a
    refusal (recorded by the middleware) both become 503, and no row leaves. (The app runs in
    process over the broker's services: its requests present the session's certificate as
    the gate would hand them on.)"""
    import asyncio
    import copy

    import httpx
    import psycopg2

    from broker_api.app import create_app
    from broker_api.audit import AuditSink

    async def unreachable():
        raise psycopg2.OperationalError("the audit database is unreachable")

    services = copy.copy(broker.services)
    services.sink = AuditSink(unreachable, actor="broker")
    app = create_app(services)
    body = {"dataset": FACT, "columns": ["order_id", "price"], "limit": 5}

    async def ask():
        presented = certificate_thumbprint(session_client(settings).pem)
        transport = httpx.ASGITransport(app=through_the_gate(app, presented))
        async with httpx.AsyncClient(transport=transport, base_url="http://broker") as client:
            return (
                await client.post("/query", json=body, headers=bearer(mint("analyst"))),
                await client.post("/query", json=body, headers=bearer(mint("stranger"))),
            )

    allowed, refused = asyncio.run(ask())
    for response in (allowed, refused):
        assert response.status_code == 503, response.text
        assert response.json()["reason"] == "audit log unavailable: request not served"
        assert "rows" not in response.json() and response.headers["X-Request-ID"]


def test_nul_anywhere_in_a_request_is_recorded_and_answered(
    http, mint, settings, superuser_dsn
) -> None:
    """A NUL in the path or in a JSON key that a validation error names used to make the
    event unwritable (503, no trace); now each is answered for what it is and recorded."""
    import psycopg2

    before = audit_head(superuser_dsn)
    token = mint("analyst")
    body = {"dataset": FACT, "columns": ["order_id"], "limit": 1, "\x00": 1}
    responses = [
        http.get("/%00"),
        http.post("/query", json=body, headers=bearer(token)),
        http.get("/catalog/datasets", headers=bearer(token)),
    ]
    assert [r.status_code for r in responses] == [404, 400, 200], [r.text for r in responses]
    ids = [r.headers["X-Request-ID"] for r in responses]
    with psycopg2.connect(**superuser_dsn) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT payload FROM audit.events WHERE event_type = 'broker.request' AND seq > %s",
            (before,),
        )
        by_id = {row[0]["request_id"]: row[0] for row in cur.fetchall()}
    conn.close()
    assert set(ids) <= set(by_id)
    assert by_id[ids[0]]["path"] == "/\\u0000"
    assert "\\u0000" in by_id[ids[1]]["reason"]
    report = verify_audit_log(settings)
    assert report.ok, report.broken
