"""Two broker replicas over the same stack, one in this process and one in its own (`mlsec
broker`), under the tight policy: they enforce one per-subject rate, one per-project rate, one
concurrency cap and one daily quota, and a restart does not reset the quota."""

from __future__ import annotations

import time

import httpx
import psycopg2
import pytest

from mlsec_platform.resources.leased_login import LeasedLogin
from mlsec_platform_tests.broker_api.conftest import FACT, bearer
from mlsec_platform_tests.helpers import session_client, vault_as


def _verify() -> dict:
    """The session's client certificate (its stack is up by the time a test asks)."""
    from mlsec_platform.settings import get_settings

    return {"verify": session_client(get_settings()).tls.ssl_context(), "timeout": 30}


def _ask(url: str, token: str) -> httpx.Response:
    return httpx.get(f"{url}/catalog/datasets", headers=bearer(token), **_verify())


def _page(url: str, token: str) -> httpx.Response:
    body = {"dataset": FACT, "columns": ["order_id"], "limit": 5}
    return httpx.post(f"{url}/query", json=body, headers=bearer(token), **_verify())


def test_two_replicas_enforce_one_rate_per_subject(tight_broker, broker_process, mint) -> None:
    # Burst 4, then one request a minute: alternating replicas gets four answers, not eight.
    token = mint("probe_rate", project="probe-2")
    answers = [_ask(url, token) for url in [tight_broker.url, broker_process.url] * 4]
    assert [r.status_code for r in answers].count(200) == 4, [r.status_code for r in answers]
    refused = [r for r in answers if r.status_code == 429]
    assert len(refused) == 4 and all(int(r.headers["Retry-After"]) >= 1 for r in refused)
    assert refused[0].json()["reason"] == "rate limit reached"


def test_two_replicas_enforce_one_rate_per_project(tight_broker, broker_process, mint) -> None:
    # Two subjects of one project, three requests each on its own replica: the project's
    # bucket of four is shared, so two of the six are refused.
    one, other = mint("probe_rate", project="probe-3"), mint("probe_rate", project="probe-3")
    answers = [_ask(tight_broker.url, one) for _ in range(3)]
    answers += [_ask(broker_process.url, other) for _ in range(3)]
    assert [r.status_code for r in answers] == [200, 200, 200, 200, 429, 429]


def test_two_replicas_enforce_one_concurrency_cap(tight_broker, broker_process, mint) -> None:
    token = mint("probe", project="probe-4", subject="probe-in-flight")
    slots = tight_broker.services.concurrency
    assert slots.acquire("probe-in-flight", 1)  # a request of this subject in flight here
    try:
        busy = _page(broker_process.url, token)
        assert busy.status_code == 429, busy.text
        assert busy.json()["reason"] == "too many requests in flight"
    finally:
        slots.release("probe-in-flight")
    # Once this replica gives the slot back (it keeps a spare one a moment), the other serves.
    deadline = time.monotonic() + 10
    while (answer := _page(broker_process.url, token)).status_code == 429:
        assert time.monotonic() < deadline, answer.text
        time.sleep(0.5)
    assert answer.status_code == 200, answer.text


def test_two_replicas_share_the_daily_quota_across_a_restart(
    tight_broker, broker_process, mint
) -> None:
    token = mint("probe", project="probe-5")  # 12 rows a day, 5 a page
    assert _page(tight_broker.url, token).status_code == 200
    assert _page(broker_process.url, token).status_code == 200
    spent = _page(tight_broker.url, token)
    assert spent.status_code == 429, spent.text
    assert spent.json()["reason"] == "project 'probe-5' has used its rows for today"
    broker_process.stop()
    broker_process.start()
    after = _page(broker_process.url, token)
    assert after.status_code == 429, after.text
    assert _page(broker_process.url, mint("probe", project="probe-6")).status_code == 200


def test_the_limits_keeper_keeps_the_counters_and_nothing_else(settings, endpoints) -> None:
    login = LeasedLogin(vault_as("broker", settings, endpoints), "limits-keeper", margin_seconds=5)
    conn = login.connect(endpoints.postgres_host, endpoints.postgres_port, settings.warehouse_db)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            take = "SELECT granted FROM limits.take(%s, %s, %s, %s)"
            cur.execute(take, (["subject:keeper-probe"], [0.0], [2.0], [5.0]))
            assert cur.fetchone() == (2.0,)  # a new bucket starts full, and gives what it has
            cur.execute(take, (["subject:keeper-probe"], [0.0], [2.0], [5.0]))
            assert cur.fetchone() == (0.0,)
            for statement in (
                "SELECT 1 FROM audit.events LIMIT 1",
                "INSERT INTO audit.events (event_id, event_type, actor, payload) "
                "VALUES (gen_random_uuid(), 'x', 'x', '{}')",
                "DROP TABLE limits.buckets",
                "CREATE TABLE limits.extra (n int)",
            ):
                with pytest.raises(psycopg2.errors.InsufficientPrivilege):
                    cur.execute(statement)
    finally:
        conn.close()
        login.revoke()


def test_many_subjects_of_one_project_share_its_bucket_without_waste(http, mint) -> None:
    # A project's rate is for its requests, not for its number of people: 120 analysts asking
    # once each stay far under olist-br's 3,000 a minute (a bucket of 500). A replica that
    # leased project tokens per subject spent a lease's worth for each new subject and refused
    # the project after about 50 of them.
    tokens = [mint("analyst") for _ in range(120)]
    statuses = [http.get("/catalog/datasets", headers=bearer(t)).status_code for t in tokens]
    assert statuses.count(200) == len(tokens), statuses
