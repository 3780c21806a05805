"""The token rules both services share (identities/tokens.py): a bounded lifetime, exactly one
audience, numeric times, a non-empty subject, and scopes matched whole.

The gateway's verifier is real here; only its key source is a local Ed25519 key instead of
OpenBao transit (the transit path is covered by the stack tests).
"""

from __future__ import annotations

import re
import time

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from mlsec_platform.identities.tokens import (
    ISSUER,
    MAX_LIFETIME_SECONDS,
    InvalidToken,
    TokenVerifier,
    check_claims,
    granted_scopes,
)
from mlsec_platform_tests.helpers import PRESENTED, foreign_certificate

KEY = Ed25519PrivateKey.generate()
KID = "mlsec-issuer:v1"
AUDIENCE = "mlsec-gateway"


def _claims(**overrides) -> dict:
    """Valid gateway claims; an override of None removes the claim."""
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "uploader-1",
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        "scope": ["upload:olist_orders"],
        "cnf": {"x5t#S256": PRESENTED},
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def _sign(claims: dict) -> str:
    return jwt.encode(claims, KEY, algorithm="EdDSA", headers={"kid": KID})


def _verifier(**options) -> TokenVerifier:
    return TokenVerifier(lambda: {KID: KEY.public_key()}, audience=AUDIENCE, **options)


def test_a_valid_token_verifies() -> None:
    assert _verifier().verify(_sign(_claims()))["sub"] == "uploader-1"


def test_the_default_longest_lifetime_is_one_hour() -> None:
    assert MAX_LIFETIME_SECONDS == 3600
    now = int(time.time())
    _verifier().verify(_sign(_claims(iat=now, exp=now + 3600)))  # exactly one hour: fine
    with pytest.raises(InvalidToken, match="lifetime"):
        _verifier().verify(_sign(_claims(iat=now, exp=now + 3601)))


def test_the_longest_lifetime_is_configurable() -> None:
    now = int(time.time())
    token = _sign(_claims(iat=now, exp=now + 600))
    _verifier(max_lifetime_seconds=600).verify(token)
    with pytest.raises(InvalidToken, match="lifetime .* over 300 seconds"):
        _verifier(max_lifetime_seconds=300).verify(token)


def refused(now: int) -> dict[str, tuple[dict, str]]:
    """Claims breaking one shared rule each, and the reason given, for tokens signed ``now``
    (built when a test runs: a token made at collection is expired in a long session)."""
    return {
        "a 100-year token": (
            _claims(exp=now + 100 * 365 * 86400),
            "token lifetime (exp - iat) is over 3600 seconds",
        ),
        "exp as a numeric string": (_claims(exp="4102444800"), "claim 'exp' must be a number"),
        "iat as a numeric string": (_claims(iat=str(now)), "claim 'iat' must be a number"),
        "nbf as a numeric string": (_claims(nbf=str(now)), "claim 'nbf' must be a number"),
        "exp as a boolean": (_claims(exp=True), "claim 'exp' must be a number"),
        "exp past the double range": (_claims(exp=10**400), "token lifetime (exp - iat) is over"),
        "exp as NaN": (_claims(exp=float("nan")), "claim 'exp' must be a number"),
        "exp as a list": (_claims(exp=[now + 60]), "claim 'exp' must be a number"),
        "both audiences": (
            _claims(aud=["mlsec-gateway", "mlsec-broker"]),
            "token must name exactly one audience",
        ),
        "the audience twice": (
            _claims(aud=["mlsec-gateway", "mlsec-gateway"]),
            "token must name exactly one audience",
        ),
        "an empty sub": (_claims(sub=""), "claim 'sub' must be a non-empty string"),
        "a numeric sub": (_claims(sub=5), "claim 'sub' must be a non-empty string"),
        "expired": (_claims(exp=now - 60), "token expired"),
        "issued in the future": (_claims(iat=now + 3600, exp=now + 3700), "token not valid yet"),
    }


@pytest.mark.parametrize("case", list(refused(0)))
def test_tokens_breaking_a_shared_rule_are_refused_with_a_reason(case) -> None:
    claims, reason = refused(int(time.time()))[case]
    with pytest.raises(InvalidToken, match=re.escape(reason)):
        _verifier().verify(_sign(claims))


def test_one_audience_in_a_list_is_one_audience() -> None:
    assert _verifier().verify(_sign(_claims(aud=[AUDIENCE])))["aud"] == [AUDIENCE]


@pytest.mark.parametrize(
    ("scope", "granted"),
    [
        (["upload:olist_orders", "publish:*"], {"upload:olist_orders", "publish:*"}),
        ("upload:olist_orders publish:orders", {"upload:olist_orders", "publish:orders"}),
        ("upload:olist_orders_archive", {"upload:olist_orders_archive"}),
        ("", set()),
        ([], set()),
    ],
)
def test_scopes_are_a_list_or_a_space_separated_string(scope, granted) -> None:
    assert granted_scopes({"scope": scope}) == granted
    assert granted_scopes({}) == frozenset()


@pytest.mark.parametrize(
    "scope",
    [{"upload": "olist_orders"}, 7, True, [1], [""], ["upload:a", None], "upload:a  upload:b"],
    ids=repr,
)
def test_a_scope_claim_of_another_shape_is_an_invalid_token(scope) -> None:
    with pytest.raises(InvalidToken, match="claim 'scope' must be"):
        granted_scopes({"scope": scope})


json_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.integers(min_value=-(10**400), max_value=10**400),
        st.floats(),
        st.text(max_size=8),
    ),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(), inner)),
    max_leaves=6,
)
claim_sets = st.dictionaries(
    st.sampled_from(["exp", "nbf", "iat", "aud", "sub", "scope"]), json_values
).map(lambda drawn: {**_claims(), **drawn})


@given(claims=claim_sets)
@settings(max_examples=500, deadline=None, database=None)
def test_any_claim_values_are_refused_as_an_invalid_token_or_pass(claims) -> None:
    """Whatever a signed token's claims hold, the shared rules refuse it as an InvalidToken
    (a 401) or accept it; never another exception (a 500)."""
    try:
        check_claims(claims, leeway=5, max_lifetime=MAX_LIFETIME_SECONDS)
        granted_scopes(claims)
    except InvalidToken:
        return
    assert claims["exp"] - claims["iat"] <= MAX_LIFETIME_SECONDS


def test_the_thumbprint_is_rfc_8705s_of_the_der_certificate(tmp_path) -> None:
    import base64
    import hashlib

    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    from mlsec_platform.identities.tokens import certificate_thumbprint

    pem = foreign_certificate(tmp_path).certificate.read_bytes()
    der = x509.load_pem_x509_certificate(pem).public_bytes(Encoding.DER)
    expected = base64.urlsafe_b64encode(hashlib.sha256(der).digest()).rstrip(b"=").decode()
    assert certificate_thumbprint(pem) == certificate_thumbprint(der) == expected
    assert certificate_thumbprint(pem.decode()) == expected and len(expected) == 43


@pytest.mark.parametrize(
    ("cnf", "presented", "reason"),
    [
        (None, PRESENTED, "not bound to a client certificate"),
        ({"x5t#S256": PRESENTED}, None, "no client certificate was presented"),
        ({"x5t#S256": PRESENTED}, "another", "bound to another client certificate"),
        ({"x5t#S256": PRESENTED.upper()}, PRESENTED, "bound to another client certificate"),
    ],
)
def test_a_token_counts_only_with_the_certificate_it_is_bound_to(cnf, presented, reason):
    from mlsec_platform.identities.tokens import check_binding

    claims = _verifier().verify(_sign(_claims(cnf=cnf)))
    with pytest.raises(InvalidToken, match=reason):
        check_binding(claims, presented)
    check_binding(_claims(), PRESENTED)  # the right pair
