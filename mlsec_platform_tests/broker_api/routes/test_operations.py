"""/health and /metrics over real HTTP."""

from __future__ import annotations

import pytest

from broker_api.metrics import ScrapeCredential

SCRAPE = "scrape-credential-of-this-test-0123"


@pytest.fixture
def scraped(broker, monkeypatch):
    """The session's broker with a scrape credential, for this test only."""
    monkeypatch.setattr(broker.services, "scrape", ScrapeCredential(SCRAPE))


def test_metrics_and_health(http, scraped) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    assert http.get("/health").json()["status"] == "ok"
    assert http.get("/metrics").status_code == 401  # not without the credential
    metrics = http.get("/metrics", headers={"Authorization": f"Bearer {SCRAPE}"})
    families = list(text_string_to_metric_families(metrics.text))
    assert any("requests" in f.name for f in families)
    # /health was answered only after its audit event committed, so that commit is counted.
    commits = [
        s.value
        for f in families
        for s in f.samples
        if s.name == "broker_audit_commit_seconds_count"
    ]
    assert commits and commits[0] >= 1
