"""The receipt checks alone (no server): a chain made here (a root key in a JWKS, a broker key
certificate, a receipt) verifies, and each check refuses what it is there for; anything that
is no receipt is refused with ReceiptInvalid, never another error."""

from __future__ import annotations

import hashlib
import time

import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from broker_api.client.receipts import (
    CERTIFICATE_TYPE,
    RECEIPT_TYPE,
    ReceiptInvalid,
    b64url,
    read_receipt_file,
    receipt_file,
    request_fingerprint,
    verify_receipt,
)

BODY = b'{"rows": [1, 2, 3]}'
ROOT = Ed25519PrivateKey.generate()
BROKER = Ed25519PrivateKey.generate()


def _raw(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


JWKS = {"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": "root:v1", "x": b64url(_raw(ROOT))}]}


def _jws(header: dict, claims: dict, key: Ed25519PrivateKey) -> str:
    signing_input = f"{b64url(orjson.dumps(header))}.{b64url(orjson.dumps(claims))}"
    return f"{signing_input}.{b64url(key.sign(signing_input.encode()))}"


def _receipt(*, iat: int | None = None, certificate_typ: str = CERTIFICATE_TYPE, kid: str = "b"):
    now = int(time.time())
    certificate = _jws(
        {"alg": "EdDSA", "typ": certificate_typ, "kid": "root:v1"},
        {"kid": "b", "x": b64url(_raw(BROKER)), "nbf": now - 5, "exp": now + 60},
        ROOT,
    )
    claims = {
        "jti": "r1",
        "iat": now if iat is None else iat,
        "request": request_fingerprint("GET", "/catalog/datasets", "", b""),
        "response": {"status": 200, "body_sha256": hashlib.sha256(BODY).hexdigest()},
    }
    header = {"alg": "EdDSA", "typ": RECEIPT_TYPE, "kid": kid, "crt": certificate}
    return _jws(header, claims, BROKER)


def test_a_chain_rooted_in_the_jwks_verifies() -> None:
    claims = verify_receipt(_receipt(), BODY, JWKS)
    assert claims["jti"] == "r1" and claims["request"]["method"] == "GET"
    token, body = read_receipt_file(receipt_file(_receipt(), BODY))
    assert verify_receipt(token, body, JWKS)["jti"] == "r1"


def test_each_check_refuses_what_it_is_for() -> None:
    with pytest.raises(ReceiptInvalid, match="body"):
        verify_receipt(_receipt(), BODY + b" ", JWKS)
    with pytest.raises(ReceiptInvalid, match="while its broker key was valid"):
        verify_receipt(_receipt(iat=int(time.time()) + 3600), BODY, JWKS)
    with pytest.raises(ReceiptInvalid, match="not a broker key certificate"):
        verify_receipt(_receipt(certificate_typ=RECEIPT_TYPE), BODY, JWKS)
    with pytest.raises(ReceiptInvalid, match="kid"):
        verify_receipt(_receipt(kid="other"), BODY, JWKS)
    other_root = {"keys": [{**JWKS["keys"][0], "x": b64url(_raw(Ed25519PrivateKey.generate()))}]}
    with pytest.raises(ReceiptInvalid, match="certificate signature"):
        verify_receipt(_receipt(), BODY, other_root)
    with pytest.raises(ReceiptInvalid, match="unknown key"):
        verify_receipt(_receipt(), BODY, {"keys": []})


@pytest.mark.parametrize(
    "token",
    [
        "",
        "a.b",
        "a.b.c",
        "!!.??.**",
        f"{b64url(b'[1]')}.{b64url(b'{}')}.AA",
        f"{b64url(orjson.dumps({'alg': 'none'}))}.{b64url(b'{}')}.",
        f"{b64url(orjson.dumps({'alg': 'EdDSA', 'typ': RECEIPT_TYPE, 'crt': 7}))}.e30.AA",
        f"{b64url(orjson.dumps({'alg': 'EdDSA', 'typ': RECEIPT_TYPE, 'crt': 'x.y.z'}))}.e30.AA",
    ],
)
def test_what_is_no_receipt_is_refused_as_such(token: str) -> None:
    with pytest.raises(ReceiptInvalid):
        verify_receipt(token, BODY, JWKS)


def test_a_receipt_file_needs_its_body() -> None:
    with pytest.raises(ReceiptInvalid, match="no body"):
        read_receipt_file(b"only-a-receipt")
