"""The broker's request envelope on the real stack: the body cap, the limit per address before
authentication, and identical refusals folded into one audit event."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import psycopg2

from broker_api.app import create_app
from broker_api.audit import AuditSink
from broker_api.limits import ProjectRowQuota, RateLimiter
from broker_api.server import broker_tls
from mlsec_platform.ops.audit_verify import verify_audit_log
from mlsec_platform.resources.leased_login import LeasedLogin
from mlsec_platform.serving.server import BackgroundServer
from mlsec_platform.stack.ports import PortAllocator
from mlsec_platform_tests.broker_api.conftest import FACT, bearer, post_query
from mlsec_platform_tests.helpers import audit_head, https_client, vault_as


@contextmanager
def broker_with(broker, settings, endpoints, **overrides) -> Iterator[BackgroundServer]:
    """Another HTTPS broker over the session broker's services, with settings ``overrides``
    and an audit sink of its own (a sink serves one event loop)."""
    login = LeasedLogin(vault_as("broker", settings, endpoints), "audit-writer", margin_seconds=0)

    async def connect():
        return login.connect(
            endpoints.postgres_host, endpoints.postgres_port, settings.warehouse_db, async_=True
        )

    services = copy.copy(broker.services)
    services.settings = broker.services.settings.model_copy(update=overrides)
    services.sink = AuditSink(connect, actor="broker")
    services.limiter, services.quota = RateLimiter(), ProjectRowQuota()  # limits of its own
    services.close = services.sink.close  # the shared services stay open for the session
    app, tls = create_app(services), broker_tls(services.settings, services)
    with BackgroundServer(app, PortAllocator().take(), name="broker-2", tls=tls) as s:
        yield s
    login.revoke()


def request_events(superuser_dsn: dict, since: int) -> list[dict]:
    with psycopg2.connect(**superuser_dsn) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT payload FROM audit.events WHERE event_type = 'broker.request' AND seq > %s",
            (since,),
        )
        rows = [r[0] for r in cur.fetchall()]
    conn.close()
    return rows


def test_a_body_over_the_cap_is_refused_by_its_length_and_while_it_streams(
    http, mint, settings, superuser_dsn
) -> None:
    cap = settings.broker_max_body_bytes
    token = mint("analyst")
    body = b'{"dataset": "%s", "columns": ["order_id"], "limit": 1' % FACT.encode()
    padded = body + b" " * (8 * 1024 * 1024) + b"}"
    headers = {**bearer(token), "Content-Type": "application/json"}
    before = audit_head(superuser_dsn)
    declared = http.post("/query", content=padded, headers=headers)
    streamed = http.post(
        "/query",
        content=(padded[i : i + 65536] for i in range(0, len(padded), 65536)),  # chunked
        headers=headers,
    )
    small = http.post("/query", content=body + b"}", headers=headers)
    for response in (declared, streamed):
        assert response.status_code == 413, response.text[:300]
        assert str(cap) in response.json()["reason"]
    assert small.status_code == 200, small.text
    events = {e["request_id"]: e for e in request_events(superuser_dsn, before)}
    for response in (declared, streamed):
        assert events[response.headers["X-Request-ID"]]["status"] == 413


def test_unauthenticated_refusals_are_limited_per_address_before_authentication(
    broker, mint, settings, endpoints, superuser_dsn, client_tls
) -> None:
    before = audit_head(superuser_dsn)
    with (
        broker_with(
            broker, settings, endpoints, client_refusal_burst=5, client_refusal_rate=0.2
        ) as limited,
        https_client(limited.url, client_tls) as client,
    ):
        forged = [post_query(client, "forged") for _ in range(12)]
        valid = post_query(client, mint("analyst"), limit=1)
    statuses = [r.status_code for r in forged]
    assert statuses == [401] * 5 + [429] * 7, statuses
    assert int(forged[-1].headers["Retry-After"]) >= 1
    assert valid.status_code == 429  # refused before its token is even looked at
    ids = {r.headers["X-Request-ID"] for r in [*forged, valid]}
    events = [e for e in request_events(superuser_dsn, before) if e["request_id"] in ids]
    assert sum(e["count"] for e in events) == 13
    assert verify_audit_log(settings).ok


def test_a_flood_of_identical_refusals_is_recorded_as_a_few_counted_events(
    broker, settings, endpoints, superuser_dsn, client_tls
) -> None:
    before = audit_head(superuser_dsn)
    with (
        broker_with(
            broker, settings, endpoints, audit_fold_window=0.5, client_refusal_burst=0
        ) as folding,
        https_client(folding.url, client_tls) as client,
        ThreadPoolExecutor(8) as pool,
    ):
        responses = list(pool.map(lambda _: post_query(client, "forged"), range(60)))
    assert {r.status_code for r in responses} == {401}
    ids = {r.headers["X-Request-ID"] for r in responses}
    events = [e for e in request_events(superuser_dsn, before) if e["request_id"] in ids]
    assert sum(e["count"] for e in events) == 60
    assert len(events) <= 10, len(events)  # one commit per window, not one per refusal
    assert all(e["last_request_id"] in ids and e["status"] == 401 for e in events)
    assert verify_audit_log(settings).ok
