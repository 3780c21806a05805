"""/health and /metrics over real HTTP."""

from __future__ import annotations


def test_metrics_and_health(http) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    assert http.get("/health").json()["status"] == "ok"
    families = list(text_string_to_metric_families(http.get("/metrics").text))
    assert any("requests" in f.name for f in families)
    # /health was answered only after its audit event committed, so that commit is counted.
    commits = [
        s.value
        for f in families
        for s in f.samples
        if s.name == "broker_audit_commit_seconds_count"
    ]
    assert commits and commits[0] >= 1
