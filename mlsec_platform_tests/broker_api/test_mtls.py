"""mTLS at the real broker: a token counts only over the connection of the client certificate
it is bound to (RFC 8705), and a connection without a certificate of the platform CA never
reaches a route, yet is in the audit log."""

from __future__ import annotations

import time

import httpx
import pytest

from mlsec_platform_tests.broker_api.conftest import PEOPLE, ok, post_query
from mlsec_platform_tests.helpers import (
    REFUSED_CLIENTS,
    audit_head,
    https_client,
    issue_test_client,
    operator_vault,
    refused_client,
)


def _events_since(superuser_dsn: dict, seq: int, *, wait_for: int = 1) -> list[dict]:
    import psycopg2

    deadline = time.monotonic() + 5
    while True:
        with psycopg2.connect(**superuser_dsn) as conn, conn.cursor() as cur:
            cur.execute(
                "SELECT payload FROM audit.events WHERE event_type = 'broker.request' "
                "AND seq > %s ORDER BY seq",
                (seq,),
            )
            events = [row[0] for row in cur.fetchall()]
        conn.close()
        if len(events) >= wait_for or time.monotonic() > deadline:
            return events
        time.sleep(0.1)


@pytest.fixture(scope="module")
def bob(settings, tmp_path_factory):
    """A second client of the platform CA: another person's certificate."""
    return issue_test_client(settings, tmp_path_factory.mktemp("bob"), subject="bob")


def test_the_right_certificate_and_token_pair_is_served(http, mint) -> None:
    body = ok(post_query(http, mint("analyst"), limit=2))
    assert len(body["rows"]) == 2


def test_a_token_used_with_another_certificate_is_refused_and_audited(
    broker, mint, bob, superuser_dsn
) -> None:
    """Ana's token, stolen by Bob, who holds a certificate of the platform CA himself."""
    before = audit_head(superuser_dsn)
    with https_client(broker.url, bob.tls) as as_bob:
        stolen = post_query(as_bob, mint("analyst"), limit=2)
        own = post_query(as_bob, mint("analyst", certificate=bob.pem), limit=2)
    assert stolen.status_code == 401, stolen.text
    assert stolen.json()["reason"] == "token is bound to another client certificate"
    assert stolen.headers["WWW-Authenticate"] == "Bearer" and "rows" not in stolen.json()
    assert own.status_code == 200  # his own token, with his own certificate
    by_id = {e["request_id"]: e for e in _events_since(superuser_dsn, before, wait_for=2)}
    refused = by_id[stolen.headers["X-Request-ID"]]
    assert (refused["status"], refused["reason"], refused.get("dataset")) == (
        401,
        "token is bound to another client certificate",
        None,
    )


def test_a_token_bound_to_no_certificate_is_refused(http, settings, endpoints) -> None:
    """A token signed by the platform's own issuer but without ``cnf`` (``issue_token`` always
    binds: this one is signed by hand): refused all the same."""
    claims = {**PEOPLE["analyst"], "data_clearance": PEOPLE["analyst"]["clearance"]}
    claims.pop("clearance")
    unbound = _sign_without_cnf(operator_vault(settings, endpoints), claims)
    response = post_query(http, unbound, limit=1)
    assert response.status_code == 401
    assert "not bound to a client certificate" in response.json()["reason"]


def _sign_without_cnf(vault, claims: dict) -> str:
    """A token of the transit issuer key whose payload has no ``cnf`` (as an issuer that does
    not bind tokens would sign it)."""
    import base64
    import json
    import uuid

    from mlsec_platform.identities.tokens import ISSUER, ISSUER_KEY

    version = vault.secrets.transit.read_key(ISSUER_KEY)["data"]["latest_version"]
    now = int(time.time())
    header = {"alg": "EdDSA", "typ": "JWT", "kid": f"{ISSUER_KEY}:v{version}"}
    payload = {
        "iss": ISSUER,
        "sub": "unbound",
        "aud": "mlsec-broker",
        "iat": now,
        "nbf": now,
        "exp": now + 60,
        "jti": str(uuid.uuid4()),
        **claims,
    }

    def b64(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    signing_input = ".".join(b64(json.dumps(p).encode()) for p in (header, payload))
    signed = vault.secrets.transit.sign_data(
        ISSUER_KEY, base64.b64encode(signing_input.encode()).decode(), key_version=version
    )["data"]["signature"]
    return f"{signing_input}.{b64(base64.b64decode(signed.split(':', 2)[2]))}"


@pytest.mark.parametrize("client", sorted(REFUSED_CLIENTS))
def test_a_connection_without_a_valid_certificate_never_reaches_a_route(
    client, broker, mint, client_tls, superuser_dsn, tmp_path
) -> None:
    before = audit_head(superuser_dsn)
    served = broker.services.metrics.requests_total.collect()[0].samples
    url, verify = refused_client(client, broker.url, client_tls, tmp_path)
    token = {"Authorization": f"Bearer {mint('analyst')}"}  # a valid token changes nothing
    with pytest.raises(httpx.TransportError):
        httpx.post(f"{url}/query", json={}, headers=token, verify=verify, timeout=10)
    [event] = _events_since(superuser_dsn, before)
    assert event["stage"] == "tls" and event["path"] is None and "subject" not in event
    assert event["status"] == REFUSED_CLIENTS[client]
    assert event["outcome"] == "denied" and event["count"] >= 1
    # No route answered it: the broker's request counters did not move.
    assert broker.services.metrics.requests_total.collect()[0].samples == served
