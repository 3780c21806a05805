"""Exfiltration detection on two replicas: scripted enumerations, sweeps and probes, split
between them, are detected (an audit alert, a metric) and the policy's action holds the
subject in both; an operator lifts a suspension with `mlsec subject resume`. The demo's reads
and ordinary paging of a small result are not detected."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from urllib.parse import urlencode

import httpx
import pytest

from mlsec_platform.ops.demo import sample_reads
from mlsec_platform.ops.subjects import NotHeld, resume_subject
from mlsec_platform_tests.broker_api.conftest import GUARDED, THRESHOLDS, bearer, ok, query
from mlsec_platform_tests.helpers import audit_events, audit_head

ALERT = "broker.exfiltration.suspected"


def _who(mint, project: str) -> tuple[str, Callable[[], str]]:
    """A subject of its own and a way to mint it tokens (restricted: entity lookups filter on
    the person's token, which must be clear to them)."""
    subject = f"{project}-{uuid.uuid4().hex[:8]}"
    claims = {**GUARDED, "project": project, "clearance": "restricted"}
    return subject, lambda: mint("analyst", **claims, subject=subject)


def _lookup(client: httpx.Client, token: str, entities: list[str]) -> httpx.Response:
    params = urlencode([("group", "customer_rfm"), *(("entity", e) for e in entities)])
    return client.get(f"/feature/vector?{params}", headers=bearer(token))


def _until(check: Callable[[], bool], seconds: float = 8.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "not within the flush interval"
        time.sleep(0.25)


def _alerts(superuser_dsn, since: int, subject: str) -> list[dict]:
    return [e for e in audit_events(superuser_dsn, ALERT, since) if e["subject"] == subject]


def test_an_enumeration_split_over_replicas_suspends_until_an_operator_resumes(
    replicas,
    guarded,
    mint,
    settings,
    superuser_dsn,
) -> None:
    here, there = replicas
    subject, token_of = _who(mint, "watch-0")
    token, before = token_of(), audit_head(superuser_dsn)
    metric = (
        "broker_exfiltration_alerts_total",
        {"detector": "entity_enumeration", "action": "suspend"},
    )
    counted = guarded.services.metrics.registry.get_sample_value(*metric) or 0.0
    half = THRESHOLDS["entity_enumeration"] // 2 + 1
    for i in range(0, half, 8):  # unknown keys count too: enumeration is what was asked for
        ok(_lookup(there, token, [f"probe-{n}" for n in range(i, min(i + 8, half))]))
    time.sleep(1.2)  # that replica has sent its half; this one crosses the threshold
    for i in range(half, 2 * half, 8):
        ok(_lookup(here, token, [f"probe-{n}" for n in range(i, min(i + 8, 2 * half))]))
    _until(lambda: all(_lookup(c, token, ["x"]).status_code == 403 for c in replicas))
    refused = _lookup(there, token_of(), ["x"])  # a new token does not help
    assert refused.status_code == 403 and "suspended" in refused.json()["reason"]
    (alert,) = _alerts(superuser_dsn, before, subject)
    assert alert["detector"] == "entity_enumeration" and alert["action"] == "suspend"
    assert alert["count"] >= THRESHOLDS["entity_enumeration"] and alert["project"] == "watch-0"
    assert guarded.services.metrics.registry.get_sample_value(*metric) == counted + 1
    resume_subject(settings, subject, "checked with the team: a migration", print)
    _until(lambda: all(_lookup(c, token, ["x"]).status_code == 200 for c in replicas))
    with pytest.raises(NotHeld):
        resume_subject(settings, subject, "checked with the team: a migration", print)
    assert audit_events(superuser_dsn, "broker.subject.resumed", before)[-1]["subject"] == subject


def test_a_pagination_sweep_over_replicas_is_throttled_in_both(replicas, mint, superuser_dsn):
    subject, token_of = _who(mint, "watch-1")
    token, before = token_of(), audit_head(superuser_dsn)
    body = {"dataset": "gold/fact_order_item", "columns": ["order_id"], "limit": 2}
    cursor = ok(query(replicas[0], token, **body))["next_cursor"]
    for step in range(THRESHOLDS["pagination_sweep"]):
        cursor = ok(query(replicas[step % 2], token, **body, cursor=cursor))["next_cursor"]

    def throttled() -> bool:
        answers = [query(c, token, **body) for c in replicas]
        return all(a.status_code == 429 and "throttled" in a.json()["reason"] for a in answers)

    _until(throttled)
    assert 1 <= int(query(replicas[1], token, **body).headers["Retry-After"]) <= 60
    (alert,) = _alerts(superuser_dsn, before, subject)
    assert (alert["detector"], alert["action"]) == ("pagination_sweep", "throttle")


def test_filter_probing_over_replicas_demands_a_new_token(replicas, mint, superuser_dsn):
    subject, token_of = _who(mint, "watch-2")
    token, before = token_of(), audit_head(superuser_dsn)
    for value in range(THRESHOLDS["filter_probing"]):  # the same query, one value varied
        probe = [{"column": "orders", "op": "eq", "value": value + 1}]
        ok(query(replicas[value % 2], token, filters=probe, limit=1))
    _until(lambda: all(query(c, token, limit=1).status_code == 401 for c in replicas))
    assert "a new token is required" in query(replicas[0], token, limit=1).json()["reason"]
    (alert,) = _alerts(superuser_dsn, before, subject)
    assert (alert["detector"], alert["action"]) == ("filter_probing", "reauthenticate")
    time.sleep(1.1)  # token times are whole seconds: the new one is issued after the hold
    fresh = token_of()
    assert all(query(c, fresh, limit=1).status_code == 200 for c in replicas)


def test_ordinary_paging_and_lookups_are_not_detected(replicas, mint, superuser_dsn) -> None:
    subject, token_of = _who(mint, "watch-3")
    token, before = token_of(), audit_head(superuser_dsn)
    small = {"filters": [{"column": "orders", "op": "gte", "value": 3}], "limit": 4}
    page = ok(query(replicas[0], token, **small))
    pages = 1
    while page["next_cursor"] and pages < THRESHOLDS["pagination_sweep"] - 1:
        page = ok(query(replicas[pages % 2], token, **small, cursor=page["next_cursor"]))
        pages += 1
    for value in (2, 4):  # a couple of different questions
        ok(query(replicas[1], token, filters=[{"column": "orders", "op": "gte", "value": value}]))
    ok(_lookup(replicas[0], token, [f"someone-{n}" for n in range(5)]))
    time.sleep(1.5)  # both replicas have flushed what they saw
    assert all(query(c, token, **small).status_code == 200 for c in replicas)
    assert _alerts(superuser_dsn, before, subject) == []


def test_the_demos_reads_are_not_detected(settings, guarded_policy_dir, superuser_dsn) -> None:
    before = audit_head(superuser_dsn)
    # The demo's own reads, against the low thresholds of the guarded policy.
    frames = sample_reads(
        settings.model_copy(update={"broker_policy_dir": guarded_policy_dir}), lambda _: None
    )
    assert all(len(f) > 0 for f in frames.values())
    alerts = audit_events(superuser_dsn, ALERT, before)
    assert [a for a in alerts if a["subject"].startswith("demo-")] == []
