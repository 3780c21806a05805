"""Broker tokens: only asymmetric signatures from a published key, with every claim in shape."""

from __future__ import annotations

import base64
import json
import re
import tempfile
import time
from pathlib import Path

import jwt
import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hvac.exceptions import Forbidden
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from broker_api.identity import (
    BROKER_AUDIENCE,
    BROKER_ISSUER,
    JwksVerifier,
    http_jwks,
    issue_broker_token,
    transit_jwks,
)
from broker_api.principal import REQUIRED_CLAIMS, Principal
from mlsec_platform.catalog.governance import Purpose, Sensitivity
from mlsec_platform.identities.tokens import ISSUER_KEY, InvalidToken, certificate_thumbprint
from mlsec_platform_tests.helpers import foreign_certificate

ISS = "https://idp.example"
ED = Ed25519PrivateKey.generate()
ED_NEXT = Ed25519PrivateKey.generate()
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())


def _jwk(algorithm, private_key, kid: str, **extra) -> dict:
    return {**algorithm.to_jwk(private_key.public_key(), as_dict=True), "kid": kid, **extra}


ED_JWK = _jwk(OKPAlgorithm, ED, "ed-1", alg="EdDSA", use="sig")
ED_NEXT_JWK = _jwk(OKPAlgorithm, ED_NEXT, "ed-2", alg="EdDSA", use="sig")
RSA_JWK = _jwk(RSAAlgorithm, RSA_KEY, "rsa-1")  # no alg: fits RS* and PS*
RSA_PINNED_JWK = _jwk(RSAAlgorithm, RSA_KEY, "rsa-pinned", alg="RS256")
RSA_ENC_JWK = _jwk(RSAAlgorithm, RSA_KEY, "rsa-enc", use="enc")
EC_JWK = _jwk(ECAlgorithm, EC_KEY, "ec-1", alg="ES256")
JWKS = {"keys": [ED_JWK, RSA_JWK, RSA_PINNED_JWK, RSA_ENC_JWK, EC_JWK]}
ALGORITHMS = ("EdDSA", "RS256", "PS256")
#: The thumbprint of the client certificate the tokens here are bound to.
BOUND = "3q2-7wAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"


def _claims(**overrides) -> dict:
    """Valid broker claims; an override of None removes the claim."""
    now = int(time.time())
    claims = {
        "iss": ISS,
        "aud": BROKER_AUDIENCE,
        "sub": "alice",
        "iat": now,
        "nbf": now,
        "exp": now + 300,
        "jti": "token-1",
        "groups": ["analysts", "emea"],
        "project": "churn",
        "purpose": "analytics",
        "data_clearance": "confidential",
        "entitlements": ["reveal"],
        "cnf": {"x5t#S256": BOUND},
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def _sign(claims: dict | None = None, key=ED, alg: str = "EdDSA", kid: str | None = "ed-1"):
    headers = {"kid": kid} if kid else None
    return jwt.encode(_claims() if claims is None else claims, key, algorithm=alg, headers=headers)


def _verifier(fetch=lambda: JWKS, **options) -> JwksVerifier:
    return JwksVerifier(
        fetch, issuer=ISS, audience=BROKER_AUDIENCE, algorithms=ALGORITHMS, **options
    )


class KeySource:
    """A JWKS whose keys a test changes, counting fetches."""

    def __init__(self, *keys: dict) -> None:
        self.keys, self.calls, self.failing = list(keys), 0, False

    def __call__(self) -> dict:
        self.calls += 1
        if self.failing:
            raise ConnectionError("key source down")
        return {"keys": list(self.keys)}


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


# --- valid tokens -------------------------------------------------------------------------


def test_a_valid_token_gives_its_principal():
    principal = _verifier().verify(_sign())
    assert principal == Principal(
        subject="alice",
        groups=("analysts", "emea"),
        project="churn",
        purpose=Purpose.ANALYTICS,
        clearance=Sensitivity.CONFIDENTIAL,
        entitlements=frozenset({"reveal"}),
        token_id="token-1",
        certificate=BOUND,
    )
    assert principal.claims["iss"] == ISS


@pytest.mark.parametrize(
    "cnf", [None, {}, {"x5t#S256": ""}, {"x5t": BOUND}, {"x5t#S256": 7}, "x5t#S256", [BOUND]]
)
def test_a_token_not_bound_to_a_certificate_is_refused(cnf):
    """RFC 8705: every broker token names the client certificate it must come with."""
    with pytest.raises(InvalidToken, match="not bound to a client certificate"):
        _verifier().verify(_sign(_claims(cnf=cnf)))


@pytest.mark.parametrize("alg", ["RS256", "PS256"])
def test_rsa_tokens_verify_against_an_rsa_jwk(alg):
    principal = _verifier().verify(_sign(key=RSA_KEY, alg=alg, kid="rsa-1"))
    assert principal.subject == "alice"


def test_entitlements_are_optional():
    principal = _verifier().verify(_sign(_claims(entitlements=None, jti=None)))
    assert principal.entitlements == frozenset() and principal.token_id is None


# --- attacks and malformed tokens -----------------------------------------------------------


def _tampered() -> str:
    header, _, signature = _sign().split(".")
    payload = json.dumps(_claims(data_clearance="restricted")).encode()
    return f"{header}.{base64.urlsafe_b64encode(payload).rstrip(b'=').decode()}.{signature}"


def _hs256_with_the_public_key() -> str:
    public = base64.urlsafe_b64decode(ED_JWK["x"] + "==")
    return jwt.encode(_claims(), public, algorithm="HS256", headers={"kid": "ed-1"})


ATTACKS = {
    "missing": (lambda: None, "missing bearer token"),
    "empty": (lambda: "", "missing bearer token"),
    "malformed": (lambda: "not-a-jwt", "malformed token"),
    "garbage segments": (lambda: "a.b.c", "malformed token"),
    "oversized": (lambda: "a" * 20_000, "token too large"),
    "alg none": (
        lambda: jwt.encode(_claims(), None, algorithm="none", headers={"kid": "ed-1"}),
        "unsigned tokens are not accepted",
    ),
    "hs256 with the public key": (
        _hs256_with_the_public_key,
        "symmetric algorithms are not accepted",
    ),
    "alg not allowed": (
        lambda: _sign(key=EC_KEY, alg="ES256", kid="ec-1"),
        "algorithm 'ES256' is not accepted",
    ),
    "alg does not fit the key type": (
        lambda: _sign(key=RSA_KEY, alg="RS256", kid="ed-1"),
        "token algorithm does not match its key",
    ),
    "alg other than the jwk's": (
        lambda: _sign(key=RSA_KEY, alg="PS256", kid="rsa-pinned"),
        "token algorithm does not match its key",
    ),
    "missing kid": (lambda: _sign(kid=None), "token has no key id"),
    "unknown kid": (lambda: _sign(kid="ed-99"), "token signed with an unknown key"),
    "encryption key": (
        lambda: _sign(key=RSA_KEY, alg="RS256", kid="rsa-enc"),
        "token signed with an unknown key",
    ),
    "wrongly signed": (lambda: _sign(key=ED_NEXT), "token signature does not verify"),
    "tampered payload": (_tampered, "token signature does not verify"),
    "expired": (lambda: _sign(_claims(exp=int(time.time()) - 60)), "token expired"),
    "not yet valid": (lambda: _sign(_claims(nbf=int(time.time()) + 3600)), "token not valid yet"),
    "wrong issuer": (
        lambda: _sign(_claims(iss="https://evil.example")),
        "token from an unknown issuer",
    ),
    "wrong audience": (
        lambda: _sign(_claims(aud="mlsec-gateway")),
        "token is for another audience",
    ),
    **{
        f"missing {claim}": (
            lambda claim=claim: _sign(_claims(**{claim: None})),
            f"token lacks the '{claim}' claim",
        )
        for claim in ("exp", "nbf", "iat", "iss", "aud", *REQUIRED_CLAIMS)
    },
    "empty sub": (lambda: _sign(_claims(sub="")), "claim 'sub' must be a non-empty string"),
    "numeric sub": (lambda: _sign(_claims(sub=7)), "claim 'sub' must be a non-empty string"),
    "groups a string": (
        lambda: _sign(_claims(groups="admins")),
        "claim 'groups' must be a list of non-empty strings",
    ),
    "groups with an empty name": (
        lambda: _sign(_claims(groups=[""])),
        "claim 'groups' must be a list",
    ),
    "groups with a number": (lambda: _sign(_claims(groups=[1])), "claim 'groups' must be a list"),
    "empty project": (
        lambda: _sign(_claims(project="")),
        "claim 'project' must be a non-empty string",
    ),
    "project a list": (
        lambda: _sign(_claims(project=["churn"])),
        "claim 'project' must be a non-empty string",
    ),
    "unknown purpose": (lambda: _sign(_claims(purpose="spying")), "claim 'purpose' must be one of"),
    "unknown clearance": (
        lambda: _sign(_claims(data_clearance="top_secret")),
        "claim 'data_clearance' must be one of",
    ),
    "clearance as a number": (
        lambda: _sign(_claims(data_clearance=3)),
        "claim 'data_clearance' must be one of",
    ),
    "clearance in capitals": (
        lambda: _sign(_claims(data_clearance="RESTRICTED")),
        "claim 'data_clearance' must be one of",
    ),
    "entitlements a string": (
        lambda: _sign(_claims(entitlements="reveal")),
        "claim 'entitlements' must be a list",
    ),
    "entitlements with a null": (
        lambda: _sign(_claims(entitlements=[None])),
        "claim 'entitlements' must be a list",
    ),
    "numeric jti": (lambda: _sign(_claims(jti=5)), "claim 'jti' must be a string"),
    "iat not a number": (lambda: _sign(_claims(iat="yesterday")), "claim 'iat' must be a number"),
    "exp a numeric string": (
        lambda: _sign(_claims(exp="4102444800")),
        "claim 'exp' must be a number",
    ),
    "nbf a numeric string": (
        lambda: _sign(_claims(nbf=str(int(time.time())))),
        "claim 'nbf' must be a number",
    ),
    "valid for the gateway and the broker": (
        lambda: _sign(_claims(aud=["mlsec-gateway", BROKER_AUDIENCE])),
        "token must name exactly one audience",
    ),
    "a 100-year token": (
        lambda: _sign(_claims(exp=int(time.time()) + 100 * 365 * 86400)),
        "token lifetime (exp - iat) is over 3600 seconds",
    ),
}


@pytest.mark.parametrize("attack", list(ATTACKS), ids=list(ATTACKS))
def test_bad_tokens_are_refused_with_their_reason(attack):
    forge, reason = ATTACKS[attack]
    with pytest.raises(InvalidToken, match=re.escape(reason)):
        _verifier().verify(forge())


@pytest.mark.parametrize(
    "algorithms", [("none",), ("HS256",), ("EdDSA", "HS384"), ("ES512",), ()], ids=repr
)
def test_only_asymmetric_algorithms_can_be_configured(algorithms):
    with pytest.raises(ValueError, match="only asymmetric algorithms"):
        JwksVerifier(lambda: JWKS, issuer=ISS, audience=BROKER_AUDIENCE, algorithms=algorithms)


# --- key rotation and refetching ------------------------------------------------------------


def test_a_new_kid_is_picked_up_by_a_refetch():
    source, clock = KeySource(ED_JWK), Clock()
    verifier = _verifier(source, clock=clock, min_refetch_seconds=10)
    old = _sign()
    assert verifier.verify(old).subject == "alice" and source.calls == 1
    source.keys.append(ED_NEXT_JWK)
    clock.now += 10
    assert verifier.verify(_sign(key=ED_NEXT, kid="ed-2")).subject == "alice"
    assert verifier.verify(old).subject == "alice"
    assert source.calls == 2


def test_unknown_kids_refetch_at_most_once_per_interval():
    source, clock = KeySource(ED_JWK), Clock()
    verifier = _verifier(source, clock=clock, min_refetch_seconds=10)
    verifier.verify(_sign())
    clock.now += 10
    for n in range(50):
        with pytest.raises(InvalidToken, match="unknown key"):
            verifier.verify(_sign(kid=f"bogus-{n}"))
    assert source.calls == 2
    clock.now += 10
    with pytest.raises(InvalidToken, match="unknown key"):
        verifier.verify(_sign(kid="bogus-again"))
    assert source.calls == 3


def test_a_key_removed_from_the_jwks_stops_verifying_after_the_refresh():
    source, clock = KeySource(ED_JWK), Clock()
    verifier = _verifier(source, clock=clock, refresh_seconds=60)
    token = _sign()
    verifier.verify(token)
    source.keys = [ED_NEXT_JWK]
    clock.now += 61
    with pytest.raises(InvalidToken, match="unknown key"):
        verifier.verify(token)


def test_a_verified_token_is_remembered_briefly_and_never_past_its_expiry():
    source, clock = KeySource(ED_JWK), Clock()
    verifier = _verifier(
        source, clock=clock, refresh_seconds=35, min_refetch_seconds=1, leeway_seconds=0
    )
    token = _sign(_claims(exp=int(time.time()) + 2))
    assert verifier.cached(token) is None and verifier.cached(None) is None  # never verified
    first = verifier.verify(token)
    source.failing, source.keys = True, []
    clock.now += 10  # within the remembered window: no key lookup at all
    assert verifier.cached(token) is first and verifier.verify(token) is first
    clock.now += 30  # past it: verified again, with stale keys and the key source down
    assert verifier.cached(token) is None
    with pytest.raises(InvalidToken):
        verifier.verify(token)
    source.failing, source.keys = False, [ED_JWK]
    clock.now += 600
    verifier.verify(token)
    time.sleep(2.1)  # expiry is wall-clock: a remembered token still expires on time
    with pytest.raises(InvalidToken, match="expired"):
        verifier.verify(token)


def test_an_unreachable_key_source_fails_closed():
    source, clock = KeySource(ED_JWK), Clock()
    verifier = _verifier(source, clock=clock, refresh_seconds=60, min_refetch_seconds=10)
    token = _sign()
    verifier.verify(token)
    source.failing = True
    clock.now += 61
    for _ in range(3):
        with pytest.raises(InvalidToken, match="signing keys unavailable"):
            verifier.verify(token)
    assert source.calls == 2
    source.failing = False
    clock.now += 10
    assert verifier.verify(token).subject == "alice"


def test_a_kid_published_twice_is_never_trusted():
    twin = {**ED_NEXT_JWK, "kid": "ed-1"}
    with pytest.raises(InvalidToken, match="unknown key"):
        _verifier(lambda: {"keys": [ED_JWK, twin]}).verify(_sign())


def test_a_jwks_needs_https_unless_on_loopback():
    with pytest.raises(ValueError, match="https"):
        http_jwks("http://idp.example/jwks")
    http_jwks("http://127.0.0.1:8080/jwks")
    http_jwks("https://idp.example/.well-known/jwks.json")


@pytest.mark.parametrize(
    "bad", [{"project": ""}, {"groups": [""]}, {"clearance": "secret"}, {"purpose": "spying"}]
)
def test_issue_broker_token_refuses_bad_claims_before_signing(bad):
    claims = {
        "subject": "alice",
        "groups": ["analysts"],
        "project": "churn",
        "purpose": "analytics",
        "clearance": "internal",
        **bad,
    }
    with pytest.raises(ValueError):
        issue_broker_token(object(), ttl_seconds=60, certificate=b"", **claims)  # type: ignore


@pytest.mark.parametrize(
    "args, error",
    [
        (["--audience", "mlsec-broker", "--group", "g"], "needs --project, --purpose, --clearance"),
        (
            [
                "--audience",
                "mlsec-broker",
                "--group",
                "g",
                "--project",
                "p",
                "--purpose",
                "analytics",
                "--clearance",
                "internal",
                "--scope",
                "upload:*",
            ],
            "--scope is for gateway tokens",
        ),
        (["--scope", "upload:*", "--project", "p"], "--project: for broker tokens"),
        (["--audience", "mlsec-broker", "--clearance", "secret"], "'secret' is not one of"),
        (["--scope", "upload:*", "--ttl", "7200"], "--ttl 7200 is over the 3600 s"),
    ],
)
def test_token_issue_checks_broker_options(args, error, tmp_path):
    from mlsec_platform.cli import main

    cert = foreign_certificate(tmp_path).certificate
    result = CliRunner().invoke(
        main, ["token", "issue", "--subject", "alice", "--cert", str(cert), *args]
    )
    assert result.exit_code == 2 and error in result.output


def test_token_issue_needs_a_certificate_to_bind_to(tmp_path):
    from mlsec_platform.cli import main

    (tmp_path / "not.pem").write_text("not a certificate")
    runner = CliRunner(env={"MLSEC_CLIENT_CERT": None})
    missing = runner.invoke(main, ["token", "issue", "--subject", "alice", "--scope", "upload:*"])
    assert missing.exit_code == 2 and "Missing option '--cert'" in missing.output
    args = ["token", "issue", "--subject", "alice", "--cert", str(tmp_path / "not.pem")]
    garbage = runner.invoke(main, args)
    assert garbage.exit_code == 2 and "not a readable PEM certificate" in garbage.output


# --- with the real OpenBao transit issuer ---------------------------------------------------


#: A client certificate the transit-issued tokens here are bound to.
CERTIFICATE = foreign_certificate(Path(tempfile.mkdtemp(prefix="test-identity-"))).certificate


@pytest.fixture(scope="module")
def operator(settings, endpoints):
    from mlsec_platform_tests.helpers import operator_vault

    return operator_vault(settings, endpoints)


@pytest.fixture(scope="module")
def key_reader(settings, endpoints):
    """A client of the gateway identity, which may only read the issuer's public keys."""
    from mlsec_platform_tests.helpers import vault_as

    vault = vault_as("gateway", settings, endpoints)
    yield vault.client()
    vault.revoke()


def _broker_token(vault, **overrides) -> str:
    claims = {
        "certificate": CERTIFICATE.read_bytes(),
        "subject": "alice",
        "groups": ["analysts"],
        "project": "churn",
        "purpose": Purpose.ANALYTICS,
        "clearance": Sensitivity.CONFIDENTIAL,
        "entitlements": ["reveal"],
        "ttl_seconds": 300,
        **overrides,
    }
    return issue_broker_token(vault, **claims)


def _transit_verifier(reader) -> JwksVerifier:
    return JwksVerifier(
        lambda: transit_jwks(reader),
        issuer=BROKER_ISSUER,
        audience=BROKER_AUDIENCE,
        min_refetch_seconds=0,
    )


def test_a_transit_issued_token_verifies_through_the_transit_jwks(operator, key_reader):
    jwks = transit_jwks(key_reader)
    assert {k["kty"] for k in jwks["keys"]} == {"OKP"} and jwks["keys"][0]["alg"] == "EdDSA"
    principal = _transit_verifier(key_reader).verify(_broker_token(operator))
    assert (principal.subject, principal.project, principal.purpose, principal.clearance) == (
        "alice",
        "churn",
        Purpose.ANALYTICS,
        Sensitivity.CONFIDENTIAL,
    )
    assert principal.entitlements == {"reveal"} and principal.token_id
    assert principal.certificate == certificate_thumbprint(CERTIFICATE.read_bytes())


def test_a_gateway_token_is_not_a_broker_token(settings, endpoints, key_reader):
    from mlsec_platform_tests.helpers import upload_token

    verifier = _transit_verifier(key_reader)
    with pytest.raises(InvalidToken):
        verifier.verify(upload_token(settings, endpoints, "upload:*"))
    with pytest.raises(InvalidToken, match="lacks the 'groups' claim"):
        verifier.verify(upload_token(settings, endpoints, "upload:*", audience=BROKER_AUDIENCE))


def test_mlsec_token_issue_prints_a_broker_token(settings, endpoints, key_reader):
    from mlsec_platform.cli import main

    args = [
        "token",
        "issue",
        "--subject",
        "bob",
        "--audience",
        "mlsec-broker",
        "--group",
        "ops",
        "--project",
        "fraud",
        "--purpose",
        "fraud_prevention",
        "--clearance",
        "restricted",
        "--entitlement",
        "reveal",
        "--ttl",
        "120",
    ]
    result = CliRunner().invoke(main, [*args, "--cert", str(CERTIFICATE)])
    assert result.exit_code == 0, result.output
    principal = _transit_verifier(key_reader).verify(result.output.strip())
    assert principal.purpose is Purpose.FRAUD and principal.clearance is Sensitivity.RESTRICTED


def test_tokens_of_the_old_key_version_verify_after_a_rotation(operator, key_reader):
    verifier = _transit_verifier(key_reader)
    old = _broker_token(operator)
    verifier.verify(old)
    try:
        operator.secrets.transit.rotate_key(ISSUER_KEY)
    except Forbidden:
        pytest.skip("this Vault client may not rotate the issuer key")
    new = _broker_token(operator, subject="bob")
    old_kid, new_kid = (jwt.get_unverified_header(t)["kid"] for t in (old, new))
    assert new_kid != old_kid and new_kid.startswith(f"{ISSUER_KEY}:v")
    assert verifier.verify(new).subject == "bob"
    assert verifier.verify(old).subject == "alice"
