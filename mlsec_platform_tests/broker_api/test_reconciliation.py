"""Audit reconciliation: a few thousand mixed requests, concurrent, from a legitimate caller
and a hostile one at two client addresses, against two HTTPS brokers sharing the audit chain. Afterwards the log holds
exactly one event per request, or one folded event whose count equals the refusals it stands
for; the chain verifies; and no legitimate request failed because of the other caller."""

from __future__ import annotations

import random
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack

from mlsec_platform.ops.audit_verify import verify_audit_log
from mlsec_platform_tests.broker_api.conftest import DIM, FACT, bearer, post_query
from mlsec_platform_tests.broker_api.test_envelope import broker_with, request_events
from mlsec_platform_tests.helpers import audit_head, https_client

#: Loopback has a whole /8: each caller gets its own source address, as distinct hosts would.
LEGIT, HOSTILE = "127.0.0.2", "127.0.0.3"


def test_every_request_is_accounted_for_once(
    broker, mint, settings, endpoints, superuser_dsn, client_tls
):
    # Tokens enough that no subject meets its own rate limit (600 a minute, burst 60).
    analysts = [mint("analyst") for _ in range(15)]
    strangers = [mint("stranger") for _ in range(2)]
    nul_key = {"dataset": FACT, "columns": ["order_id"], "\x00": 1}
    legit_calls = (
        [lambda c, t=t: post_query(c, t, limit=5) for t in analysts for _ in range(20)]
        + [lambda c, t=t: c.get("/catalog/datasets", headers=bearer(t)) for t in analysts] * 10
        + [lambda c, t=t: post_query(c, t, dataset=DIM, columns=["customer_id"]) for t in strangers]
        * 50
        + [lambda c: c.post("/query", content=b"{not json", headers=bearer(analysts[0]))] * 100
        + [lambda c: c.post("/query", json=nul_key, headers=bearer(analysts[1]))] * 100
    )
    spoofed = {"X-Forwarded-For": LEGIT}  # naming the other caller's address changes nothing
    hostile_calls = (
        [lambda c: c.get("/%00", headers=spoofed)] * 500
        + [lambda c: c.post("/query", json={}, headers={**spoofed, **bearer("forged")})] * 500
        + [lambda c: c.post("/no/such/route%00", content=b"x")] * 250
    )
    calls = [(call, HOSTILE) for call in hostile_calls] + [(call, LEGIT) for call in legit_calls]
    random.Random(13).shuffle(calls)  # noqa: S311 - an order of requests, not a secret
    head = audit_head(superuser_dsn)
    started = time.monotonic()
    with (
        broker_with(broker, settings, endpoints) as one,
        broker_with(broker, settings, endpoints) as two,
        ExitStack() as stack,
        ThreadPoolExecutor(48) as pool,
    ):
        # Two brokers (two event loops, two group-committing sinks) append to one chain.
        clients = [
            {a: stack.enter_context(https_client(b.url, client_tls, a)) for a in (LEGIT, HOSTILE)}
            for b in (one, two)
        ]
        futures = [
            pool.submit(call, clients[i % 2][address]) for i, (call, address) in enumerate(calls)
        ]
        responses = [f.result() for f in futures]
    elapsed = time.monotonic() - started
    legit_responses = [r for r, (_, a) in zip(responses, calls, strict=True) if a == LEGIT]
    hostile_responses = [r for r, (_, a) in zip(responses, calls, strict=True) if a == HOSTILE]
    assert Counter(r.status_code for r in legit_responses) == {200: 450, 403: 100, 400: 200}
    assert {r.status_code for r in hostile_responses} <= {400, 401, 404, 405, 429}
    assert any(r.status_code == 429 for r in hostile_responses)  # the hostile address is held

    ids = [r.headers["X-Request-ID"] for r in responses]
    assert len(set(ids)) == len(ids)
    events = [e for e in request_events(superuser_dsn, head) if e["request_id"] in set(ids)]
    per_id = Counter(e["request_id"] for e in events)
    assert max(per_id.values()) == 1
    assert sum(e.get("count", 1) for e in events) == len(responses)
    by_id = {e["request_id"]: e for e in events}
    for response in legit_responses:
        if response.status_code == 400:  # refused before the caller is known: may be folded
            continue
        event = by_id[response.headers["X-Request-ID"]]  # never folded: the caller is known
        assert event["status"] == response.status_code and "count" not in event
        assert event["client"] == LEGIT
    folded = [e for e in events if e.get("count", 1) > 1]
    assert folded and all(e["client"] == HOSTILE or e["status"] == 400 for e in folded)
    assert all(e["last_request_id"] in set(ids) for e in folded)
    assert len(events) < len(responses) * 0.9  # the flood did not cost one commit a refusal
    report = verify_audit_log(settings)
    assert report.ok, report.broken
    assert elapsed < 60, elapsed
