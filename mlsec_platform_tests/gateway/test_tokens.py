"""The gateway's token check: the real verifier and scope match behind the app, on a local
Ed25519 key instead of OpenBao transit (test_gateway.py runs the transit path on the stack)."""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient

from mlsec_platform.gateway.app import create_app
from mlsec_platform.gateway.services import AUDIENCE
from mlsec_platform_tests.gateway.test_app import GOOD_SELLERS, _Services
from mlsec_platform_tests.helpers import PRESENTED, through_the_gate
from mlsec_platform_tests.identities.test_tokens import _claims, _sign, _verifier


def _token(**overrides) -> str:
    """A gateway token signed by the local key; an override of None is sent as JSON null."""
    return _sign({**_claims(), **overrides})


def _upload(
    token: str,
    content: bytes = GOOD_SELLERS,
    services: _Services | None = None,
    presented: str | None = PRESENTED,
):
    services = services or _Services()
    services.verifier = _verifier()
    client = TestClient(through_the_gate(create_app(services), presented))
    return client.put(
        "/v1/files/olist_sellers", content=content, headers={"Authorization": f"Bearer {token}"}
    )


@pytest.mark.parametrize(
    "scope",
    [
        ["upload:olist_sellers"],
        "upload:olist_sellers",
        "publish:orders upload:olist_sellers",
        ["upload:*"],
        "upload:*",
    ],
    ids=repr,
)
def test_a_granting_scope_is_accepted(scope) -> None:
    # An empty upload: past the token and its scope, the content check is what refuses it.
    response = _upload(_token(scope=scope), content=b"")
    assert response.status_code == 422, response.text
    assert response.json()["reason"] == "empty upload"


@pytest.mark.parametrize(
    "scope",
    [
        "upload:olist_sellers_archive",  # a longer name is not the source
        "xupload:olist_sellers",
        "upload:olist_seller",
        ["upload:olist_sellers_archive"],
        "publish:*",
        [],
    ],
    ids=repr,
)
def test_scopes_match_whole_names_never_substrings(scope) -> None:
    response = _upload(_token(scope=scope))
    assert response.status_code == 403, response.text
    assert response.json()["reason"] == "token of 'uploader-1' does not grant upload:olist_sellers"


@pytest.mark.parametrize(
    "scope", [{"upload:olist_sellers": True}, 7, [["upload:olist_sellers"]], None], ids=repr
)
def test_a_scope_claim_of_another_shape_is_refused_with_401(scope) -> None:
    response = _upload(_token(scope=scope))
    assert response.status_code == 401, response.text
    assert "claim 'scope' must be" in response.json()["reason"]


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"sub": ""}, "claim 'sub' must be a non-empty string"),
        ({"exp": int(time.time()) + 100 * 365 * 86400}, "token lifetime (exp - iat)"),
        ({"aud": [AUDIENCE, "mlsec-broker"]}, "token must name exactly one audience"),
        ({"exp": "4102444800"}, "claim 'exp' must be a number"),
    ],
    ids=["empty sub", "100-year token", "both audiences", "string exp"],
)
def test_the_shared_token_rules_hold_at_the_gateway(overrides, reason) -> None:
    response = _upload(_token(scope=["upload:*"], **overrides))
    assert response.status_code == 401, response.text
    assert reason in response.json()["reason"]


def test_a_refusal_for_the_scope_claim_keeps_who_sent_it() -> None:
    services = _Services()
    response = _upload(_token(scope=7), services=services)
    assert response.status_code == 401
    [(_, _, status, reason, subject)] = services.kept
    assert (status, subject) == (401, "uploader-1") and "claim 'scope'" in reason


@pytest.mark.parametrize(
    ("presented", "cnf", "reason"),
    [
        ("another-certificate", {"x5t#S256": PRESENTED}, "bound to another client certificate"),
        (None, {"x5t#S256": PRESENTED}, "no client certificate was presented"),
        (PRESENTED, None, "not bound to a client certificate"),
    ],
    ids=["another certificate", "no certificate", "unbound token"],
)
def test_an_upload_token_counts_only_with_its_certificate(presented, cnf, reason) -> None:
    """RFC 8705 at the gateway: checked with the token, before the body is read."""
    services = _Services()
    token = _token(scope=["upload:*"], cnf=cnf)
    response = _upload(token, GOOD_SELLERS * 100, services=services, presented=presented)
    assert response.status_code == 401, response.text
    assert reason in response.json()["reason"]
    [(intake, kept, status, _, subject)] = services.kept
    assert intake.truncated and len(kept) < len(GOOD_SELLERS * 100) and subject is None
