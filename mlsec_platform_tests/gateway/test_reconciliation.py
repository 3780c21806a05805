"""Audit reconciliation of the gateway: mixed requests, concurrent, from a legitimate uploader
and a hostile caller at two client addresses, against the real HTTPS gateway. Every request has
exactly one event (its upload's, or the envelope's), or is counted by one folded event; the
chain verifies; no legitimate request failed because of the other caller."""

from __future__ import annotations

import json
import random
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import httpx
import psycopg2

from mlsec_platform.gateway.server import BackgroundGateway
from mlsec_platform.ops.audit_verify import verify_audit_log
from mlsec_platform.stack.ports import PortAllocator
from mlsec_platform_tests.gateway.test_gateway import GOOD_SELLERS, _event
from mlsec_platform_tests.helpers import audit_head, https_client

LEGIT, HOSTILE = "127.0.0.2", "127.0.0.3"
EVENT_TYPES = ("ingest.accepted", "ingest.rejected", "gateway.request")


def _events(superuser_dsn: dict, since: int) -> list[dict]:
    with psycopg2.connect(**superuser_dsn) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT payload FROM audit.events WHERE seq > %s AND event_type = ANY(%s)",
            (since, list(EVENT_TYPES)),
        )
        rows = [r[0] for r in cur.fetchall()]
    conn.close()
    return rows


def test_every_gateway_request_is_accounted_for_once(uploader, settings, superuser_dsn, client_tls):
    sellers = GOOD_SELLERS.encode()

    def events_body() -> str:
        return json.dumps([_event(), _event()])

    legit_calls = (
        [lambda c: c.put("/v1/files/olist_sellers", content=sellers, headers=uploader)] * 30
        + [lambda c: c.post("/v1/events/order_status", content=events_body(), headers=uploader)]
        * 30
        + [lambda c: c.put("/v1/files/olist_sellers", content=b"a,b\n1\n", headers=uploader)] * 30
        + [lambda c: c.get("/health")] * 40
        + [lambda c: c.get("/v1/files/olist_sellers", headers=uploader)] * 8
        + [lambda c: c.get("/health/")] * 8
        + [lambda c: c.put("/v1/files/olist%2Fsellers", content=b"x", headers=uploader)] * 8
    )
    forged = {"Authorization": f"Bearer {uuid.uuid4().hex}", "X-Forwarded-For": LEGIT}
    hostile_calls = (
        [lambda c: c.put("/v1/files/olist_sellers", content=sellers * 500, headers=forged)] * 150
        + [lambda c: c.put("/v1/files/%00", content=b"x")] * 100
        + [lambda c: c.post("/v1/files/olist_sellers", headers={"X-HTTP-Method-Override": "PUT"})]
        * 50
    )
    calls = [(call, HOSTILE) for call in hostile_calls] + [(call, LEGIT) for call in legit_calls]
    random.Random(7).shuffle(calls)  # noqa: S311 - an order of requests, not a secret
    head = audit_head(superuser_dsn)
    with (
        BackgroundGateway(settings, PortAllocator().take()) as running,
        https_client(running.url, client_tls, LEGIT) as legit,
        https_client(running.url, client_tls, HOSTILE) as hostile,
        ThreadPoolExecutor(24) as pool,
    ):
        clients = {LEGIT: legit, HOSTILE: hostile}
        futures = [pool.submit(call, clients[address]) for call, address in calls]
        responses = [f.result() for f in futures]
    by_caller: dict[str, list[httpx.Response]] = {LEGIT: [], HOSTILE: []}
    for response, (_, address) in zip(responses, calls, strict=True):
        by_caller[address].append(response)
    assert Counter(r.status_code for r in by_caller[LEGIT]) == {
        201: 30,
        202: 30,
        422: 30,
        200: 40,
        405: 8,
        307: 8,
        404: 8,
    }
    hostile_statuses = Counter(r.status_code for r in by_caller[HOSTILE])
    # No 5xx: a NUL in an upload's name is refused like any unknown name.
    assert set(hostile_statuses) <= {401, 404, 405, 429} and hostile_statuses[429] > 0

    ids = {r.headers["X-Request-ID"] for r in responses}
    assert len(ids) == len(responses)
    events = [e for e in _events(superuser_dsn, head) if e.get("request_id") in ids]
    assert max(Counter(e["request_id"] for e in events).values()) == 1
    assert sum(e.get("count", 1) for e in events) == len(responses)
    by_id = {e["request_id"]: e for e in events}
    for response in by_caller[LEGIT]:  # the router's refusals may be folded; these never are
        if response.status_code in (200, 201, 202, 422):
            assert response.headers["X-Request-ID"] in by_id, response.status_code
    report = verify_audit_log(settings)
    assert report.ok, report.broken
