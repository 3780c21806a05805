"""The broker's metrics render as Prometheus text, and its counters move."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from broker_api.metrics import LATENCY_BUCKETS, BrokerMetrics


def samples(metrics: BrokerMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    body, content_type = metrics.render()
    assert content_type.startswith("text/plain")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
    }


def test_counts_move_and_render_parses() -> None:
    m = BrokerMetrics()
    m.observe_request("/query", 200, 0.003)
    m.observe_request("/query", 200, 0.2)
    m.observe_request("/query", 403, 0.001)
    m.returned("gold/orders", rows=150, nbytes=9_000)
    m.returned("gold/orders", rows=50, nbytes=1_000)
    m.deny("purpose")
    m.limit("rate")
    m.limit("rate")
    m.audit_queue_depth.set(7)
    m.audit_failures_total.inc()
    m.audit_commit_seconds.observe(0.0004)
    m.audit_commit_seconds.observe(0.042)

    s = samples(m)
    assert s[("broker_requests_total", (("endpoint", "/query"), ("status", "200")))] == 2
    assert s[("broker_requests_total", (("endpoint", "/query"), ("status", "403")))] == 1
    assert s[("broker_request_seconds_count", (("endpoint", "/query"),))] == 3
    le = (("endpoint", "/query"), ("le", "0.005"))
    assert s[("broker_request_seconds_bucket", le)] == 2
    assert s[("broker_rows_returned_total", (("dataset", "gold/orders"),))] == 200
    assert s[("broker_bytes_returned_total", (("dataset", "gold/orders"),))] == 10_000
    assert s[("broker_denied_total", (("reason_kind", "purpose"),))] == 1
    assert s[("broker_rate_limited_total", (("kind", "rate"),))] == 2
    assert s[("broker_audit_queue_depth", ())] == 7
    assert s[("broker_audit_failures_total", ())] == 1
    assert s[("broker_audit_commit_seconds_count", ())] == 2
    assert s[("broker_audit_commit_seconds_bucket", (("le", "0.005"),))] == 1


def test_latency_buckets_span_half_a_millisecond_to_ten_seconds() -> None:
    assert LATENCY_BUCKETS[0] == 0.0005 and LATENCY_BUCKETS[-1] == 10.0
    assert list(LATENCY_BUCKETS) == sorted(LATENCY_BUCKETS)


def test_instances_have_their_own_registries() -> None:
    a, b = BrokerMetrics(), BrokerMetrics()
    a.deny("clearance")
    assert ("broker_denied_total", (("reason_kind", "clearance"),)) not in samples(b)
