"""The gateway's token check: the real verifier and scope match behind the app, on a local
Ed25519 key instead of OpenBao transit (test_gateway.py runs the transit path on the stack)."""

from __future__ import annotations

import time

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient

from mlsec_platform.gateway.app import create_app
from mlsec_platform.gateway.services import AUDIENCE
from mlsec_platform.identities.tokens import ISSUER, TokenVerifier
from mlsec_platform_tests.gateway.test_app import GOOD_SELLERS, _Services

KEY = Ed25519PrivateKey.generate()
KID = "mlsec-issuer:v1"


def _token(**overrides) -> str:
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "uploader-1",
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        **overrides,
    }
    return jwt.encode(claims, KEY, algorithm="EdDSA", headers={"kid": KID})


def _upload(token: str, content: bytes = GOOD_SELLERS):
    services = _Services()
    services.verifier = TokenVerifier(lambda: {KID: KEY.public_key()}, audience=AUDIENCE)
    client = TestClient(create_app(services))
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
