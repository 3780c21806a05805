"""mTLS at the real gateway: an upload token counts only over the connection of the client
certificate it is bound to, and a connection without a certificate of the platform CA never
reaches a route, yet is in the audit log."""

from __future__ import annotations

import time

import httpx
import pytest

from mlsec_platform_tests.gateway.test_gateway import GOOD_SELLERS
from mlsec_platform_tests.helpers import (
    REFUSED_CLIENTS,
    audit_events,
    audit_head,
    https_client,
    issue_test_client,
    refused_client,
    upload_token,
)


@pytest.fixture(scope="module")
def bob(settings, tmp_path_factory):
    return issue_test_client(settings, tmp_path_factory.mktemp("bob"), subject="bob")


def test_an_upload_token_used_with_another_certificate_is_refused_and_kept(
    gateway, bob, settings, endpoints, superuser_dsn
) -> None:
    seq = audit_head(superuser_dsn)
    stolen = {"Authorization": f"Bearer {upload_token(settings, endpoints, 'upload:*')}"}
    own = upload_token(settings, endpoints, "upload:*", subject="bob", certificate=bob.pem)
    with https_client(gateway.base_url, bob.tls) as as_bob:
        refused = as_bob.put("/v1/files/olist_sellers", content=GOOD_SELLERS, headers=stolen)
        accepted = as_bob.put(
            "/v1/files/olist_sellers",
            content=GOOD_SELLERS,
            headers={"Authorization": f"Bearer {own}"},
        )
    assert refused.status_code == 401, refused.text
    assert refused.json()["reason"] == "token is bound to another client certificate"
    assert accepted.status_code == 201, accepted.text
    [event] = [
        e
        for e in audit_events(superuser_dsn, "ingest.rejected", seq)
        if e["quarantine_id"] == refused.json()["quarantine_id"]
    ]
    assert event["status"] == 401 and event["subject"] is None


@pytest.mark.parametrize("client", sorted(REFUSED_CLIENTS))
def test_a_connection_without_a_valid_certificate_never_reaches_a_route(
    client, gateway, uploader, client_tls, superuser_dsn, tmp_path
) -> None:
    seq = audit_head(superuser_dsn)
    base = str(gateway.base_url).rstrip("/")
    url, verify = refused_client(client, base, client_tls, tmp_path)
    with pytest.raises(httpx.TransportError):
        httpx.put(
            f"{url}/v1/files/olist_sellers",
            content=GOOD_SELLERS,
            headers=uploader,  # a valid token changes nothing
            verify=verify,
            timeout=10,
        )
    deadline = time.monotonic() + 5
    while not (events := audit_events(superuser_dsn, "gateway.request", seq)):
        assert time.monotonic() < deadline, "the refused connection was not audited"
        time.sleep(0.1)
    [event] = events
    assert event["stage"] == "tls" and event["path"] is None and event["outcome"] == "denied"
    assert event["status"] == REFUSED_CLIENTS[client]
    assert audit_events(superuser_dsn, "ingest.accepted", seq) == []  # nothing was uploaded
