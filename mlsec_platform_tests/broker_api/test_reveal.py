"""Reveal through the broker: entitled callers with a reason only, decrypted by the separate
`revealer` identity, audited at high severity before anything is returned."""

from __future__ import annotations

from mlsec_platform.catalog.governance import TOKEN_PATTERN
from mlsec_platform_tests.broker_api.conftest import bearer
from mlsec_platform_tests.helpers import audit_events, audit_head

BODY = {
    "dataset": "silver/customers",
    "columns": ["customer_id", "email_token"],
    "limit": 5,
    "order_by": [{"column": "customer_id"}],
}
REASON = "DSAR request 2026-117: customer asked for their data"


def test_entitled_reveal_returns_clear_values_and_is_audited(
    http, mint, curated, superuser_dsn
) -> None:
    head = audit_head(superuser_dsn)
    token = mint("officer")
    plain = http.post("/query", json=BODY, headers=bearer(token)).json()
    assert all(TOKEN_PATTERN.fullmatch(r["email_token"]) for r in plain["rows"])
    response = http.post(
        "/query",
        headers=bearer(token),
        json={**BODY, "reveal": {"columns": ["email_token"], "reason": REASON}},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    emails = {
        c["customer_id"]: c["customer_email"]
        for c in curated.dataset.tables["olist_customers"]
        .select(["customer_id", "customer_email"])
        .to_pylist()
    }
    assert [r["email_token"] for r in body["rows"]] == [
        emails[r["customer_id"]] for r in body["rows"]
    ]
    assert {c["name"]: c["revealed"] for c in body["columns"]}["email_token"] is True
    revealed = audit_events(superuser_dsn, "pii.revealed", since_seq=head)
    assert revealed and revealed[-1]["severity"] == "high"
    assert revealed[-1]["reason"] == REASON and revealed[-1]["request_id"] == body["request_id"]
    assert all(v not in str(revealed) for v in (r["email_token"] for r in body["rows"]))
    request = [
        e
        for e in audit_events(superuser_dsn, "broker.request", since_seq=head)
        if e["request_id"] == body["request_id"]
    ]
    assert len(request) == 1 and request[0]["severity"] == "high"


def test_reveal_needs_the_entitlement_and_a_reason(http, mint, curated) -> None:
    ask = {**BODY, "reveal": {"columns": ["email_token"], "reason": REASON}}
    no_entitlement = mint("officer", entitlements=[])
    assert http.post("/query", json=ask, headers=bearer(no_entitlement)).status_code == 403
    fraud = mint("fraud", entitlements=["reveal"])  # the role may not reveal
    assert http.post("/query", json=ask, headers=bearer(fraud)).status_code == 403
    short = {**BODY, "reveal": {"columns": ["email_token"], "reason": "because"}}
    assert http.post("/query", json=short, headers=bearer(mint("officer"))).status_code == 400
