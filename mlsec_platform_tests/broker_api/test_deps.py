"""Who asks and what the policy decides, over real HTTPS: every policy dimension allowed and
denied, and token attacks refused."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from mlsec_platform.catalog.governance import TOKEN_PATTERN
from mlsec_platform.identities.tokens import ISSUER, issue_token
from mlsec_platform_tests.broker_api.conftest import DIM, FACT, ok, post_query
from mlsec_platform_tests.helpers import operator_vault, session_client


def test_purpose_is_checked_against_role_and_catalog(http, mint) -> None:
    wrong_role = post_query(http, mint("analyst", purpose="customer_support"))
    assert wrong_role.status_code == 403 and "customer_support" in wrong_role.json()["reason"]
    # Person-level Silver is for support and fraud only (catalog), whatever the role grants.
    officer = mint("officer", purpose="analytics")
    denied = post_query(http, officer, dataset="silver/customers", columns=["customer_id"])
    assert denied.status_code == 403 and "analytics" in denied.json()["reason"]
    allowed = post_query(http, mint("officer"), dataset="silver/customers", columns=["customer_id"])
    assert allowed.status_code == 200, allowed.text


def test_default_deny_for_unknown_groups(http, mint) -> None:
    response = post_query(http, mint("stranger"))
    assert response.status_code == 403
    assert "default-deny" in response.json()["reason"] or response.json()["decision_id"]


def test_clearance_masks_columns(http, mint) -> None:
    columns = ["customer_token", "customer_state", "first_purchase_at", "orders"]
    internal = ok(post_query(http, mint("analyst"), dataset=DIM, columns=columns, limit=50))
    confidential = ok(
        post_query(http, mint("analyst_conf"), dataset=DIM, columns=columns, limit=50)
    )
    masks = {c["name"]: c["mask"] for c in internal["columns"]}
    assert masks == {
        "customer_token": "keyed_hash",
        "customer_state": None,
        "first_purchase_at": "truncate_date",
        "orders": None,
    }
    assert all(r["customer_token"].startswith("h:") for r in internal["rows"])
    assert all(r["first_purchase_at"][8:19] == "01T00:00:00" for r in internal["rows"])
    assert all(TOKEN_PATTERN.fullmatch(r["customer_token"]) for r in confidential["rows"])
    assert all(c["mask"] is None for c in confidential["columns"])
    # Same rows, same order: the masked view is a function of the clear one.
    assert [r["orders"] for r in internal["rows"]] == [r["orders"] for r in confidential["rows"]]


def test_restricted_columns_are_redacted_below_restricted(http, mint) -> None:
    columns = ["customer_id", "name_token", "cpf_token"]
    support = post_query(http, mint("support"), dataset="silver/customers", columns=columns).json()
    assert {r["name_token"] for r in support["rows"]} == {"***"}
    fraud = post_query(http, mint("fraud"), dataset="silver/customers", columns=columns).json()
    assert all(TOKEN_PATTERN.fullmatch(r["cpf_token"]) for r in fraud["rows"])


def test_filter_on_a_masked_column_is_refused(http, mint) -> None:
    token = mint("analyst")
    response = post_query(
        http,
        token,
        dataset=DIM,
        columns=["orders"],
        filters=[{"column": "customer_token", "op": "prefix", "value": "tok_A"}],
    )
    assert response.status_code == 403 and "customer_token" in response.json()["reason"]
    ordered = post_query(
        http, token, dataset=DIM, columns=["orders"], order_by=[{"column": "customer_token"}]
    )
    assert ordered.status_code == 403


def test_project_scope_filters_rows(http, mint, curated) -> None:
    body = {
        "dataset": "gold/kpi_sales_monthly",
        "columns": ["customer_state", "orders"],
        "limit": 1000,
    }
    sp = post_query(http, mint("analyst_sp"), **body).json()
    assert sp["rows"] and {r["customer_state"] for r in sp["rows"]} == {"SP"}
    everyone = post_query(http, mint("analyst"), **body).json()
    assert len({r["customer_state"] for r in everyone["rows"]}) > 5
    # Asking for another state's rows explicitly gives nothing, not an error that leaks them.
    rj = post_query(
        http,
        mint("analyst_sp"),
        **body,
        filters=[{"column": "customer_state", "op": "eq", "value": "RJ"}],
    ).json()
    assert rj["rows"] == []
    unknown = post_query(http, mint("analyst", project="olist-mars"), **body)
    assert unknown.status_code == 403


def test_unknown_dataset_star_and_unknown_columns(http, mint) -> None:
    token = mint("analyst")
    assert post_query(http, token, dataset="gold/salaries", columns=["x"]).status_code == 404
    assert post_query(http, token, columns=["*"]).status_code == 400
    assert post_query(http, token, columns=["order_id", "password"]).status_code == 400


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _claims(**extra):
    now = int(time.time())
    return {
        "iss": ISSUER,
        "aud": "mlsec-broker",
        "sub": "eve",
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        "groups": ["analysts"],
        "project": "olist-br",
        "purpose": "analytics",
        "data_clearance": "restricted",
        **extra,
    }


def _attacks(vault, certificate: str) -> dict[str, str]:
    keys = vault.secrets.transit.read_key("mlsec-issuer")["data"]
    latest = keys["latest_version"]
    public = base64.b64decode(keys["keys"][str(latest)]["public_key"])
    kid = f"mlsec-issuer:v{latest}"
    unsigned = (
        f"{_b64(json.dumps({'alg': 'none', 'kid': kid}).encode())}."
        f"{_b64(json.dumps(_claims()).encode())}."
    )
    pem = Ed25519PublicKey.from_public_bytes(public).public_bytes(
        Encoding.PEM, PublicFormat.SubjectPublicKeyInfo
    )

    def hs256(secret: bytes) -> str:
        """Key confusion: HMAC 'signed' with what the verifier knows as a public key."""
        signing_input = (
            f"{_b64(json.dumps({'alg': 'HS256', 'typ': 'JWT', 'kid': kid}).encode())}"
            f".{_b64(json.dumps(_claims()).encode())}"
        )
        mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
        return f"{signing_input}.{_b64(mac)}"

    foreign = Ed25519PrivateKey.generate()
    claims = {
        k: v for k, v in _claims().items() if k not in ("iss", "aud", "sub", "iat", "nbf", "exp")
    }
    real = dict(subject="eve", audience="mlsec-broker", certificate=certificate)
    missing = {k: v for k, v in claims.items() if k != "data_clearance"}
    return {
        "alg none": unsigned,
        "HS256 with the public key": hs256(public),
        "HS256 with the PEM": hs256(pem),
        "HS256 with the JWK x": hs256(_b64(public).encode()),
        "unknown kid": jwt.encode(
            _claims(), foreign, algorithm="EdDSA", headers={"kid": "mlsec-issuer:v999"}
        ),
        "foreign key, real kid": jwt.encode(
            _claims(), foreign, algorithm="EdDSA", headers={"kid": kid}
        ),
        "expired": issue_token(vault, ttl_seconds=-60, claims=claims, **real),
        "not yet valid": issue_token(
            vault, ttl_seconds=7200, claims=claims, not_before=int(time.time()) + 3600, **real
        ),
        "wrong audience": issue_token(
            vault,
            ttl_seconds=60,
            claims=claims,
            subject="eve",
            audience="mlsec-gateway",
            certificate=certificate,
        ),
        "wrong issuer": issue_token(
            vault, ttl_seconds=60, claims={**claims, "iss": "evil"}, **real
        ),
        "missing clearance": issue_token(vault, ttl_seconds=60, claims=missing, **real),
        "garbage": "not.a.token",
    }


def test_token_attacks_are_401(http, settings, endpoints) -> None:
    attacks = _attacks(operator_vault(settings, endpoints), session_client(settings).pem)
    for name, token in attacks.items():
        response = post_query(http, token)
        assert response.status_code == 401, (name, response.text)
        assert response.headers.get("WWW-Authenticate") == "Bearer"
    assert http.post("/query", json={"dataset": FACT, "columns": ["order_id"]}).status_code == 401
