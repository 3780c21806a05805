"""Lineage receipts as the SDK and auditors check them: nothing here talks to a server.

A receipt is a compact JWS (EdDSA) whose header carries the broker's key certificate
(``crt``), itself a compact JWS signed by the OpenBao transit key ``broker-receipts`` (its
kid is ``broker-receipts:v<n>``, published in the receipt JWKS). Verifying a receipt:

1. the certificate's signature against the JWKS key its kid names (no other key is tried);
2. the receipt's signature against the public key the certificate holds;
3. the receipt was signed while the certificate was valid (its ``iat`` within ``nbf..exp``:
   a receipt stays verifiable as evidence after its broker key expired);
4. the SHA-256 of the exact response body bytes equals the receipt's ``response.body_sha256``.

Any failure raises :class:`ReceiptInvalid` with the step that failed.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, urlencode

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from mlsec_platform.errors import InvalidInput

#: The header the broker reads (``on`` asks for a receipt) and answers the receipt in.
RECEIPT_HEADER = "mlsec-receipt"
#: The JWS ``typ`` of a receipt and of the broker key certificate inside it.
RECEIPT_TYPE = "mlsec-receipt+jws"
CERTIFICATE_TYPE = "mlsec-receipt-key+jws"


class ReceiptInvalid(InvalidInput):
    """A receipt does not verify: changed, signed by a key the JWKS does not hold, or not
    about the body it came with. Its message names the check that failed."""

    http_status = 422


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: Any) -> bytes:
    if not isinstance(text, str):
        raise ReceiptInvalid("not a compact JWS: a part is not text")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise ReceiptInvalid("not a compact JWS: a part is not base64url") from None


def _parts(token: Any, what: str) -> tuple[dict, dict, bytes, bytes]:
    """(header, payload, signing input, signature) of a compact EdDSA JWS of type ``what``."""
    parts = token.split(".") if isinstance(token, str) else []
    if len(parts) != 3:
        raise ReceiptInvalid(f"the {what} is not a compact JWS")
    try:
        header, payload = orjson.loads(_unb64(parts[0])), orjson.loads(_unb64(parts[1]))
    except orjson.JSONDecodeError:
        raise ReceiptInvalid(f"the {what} is not JSON") from None
    if not isinstance(header, dict) or not isinstance(payload, dict):
        raise ReceiptInvalid(f"the {what} is not a JSON object")
    if header.get("alg") != "EdDSA":
        raise ReceiptInvalid(f"the {what} is not signed with EdDSA")
    return header, payload, f"{parts[0]}.{parts[1]}".encode(), _unb64(parts[2])


def _check(key: Ed25519PublicKey, signature: bytes, signed: bytes, what: str) -> None:
    try:
        key.verify(signature, signed)
    except InvalidSignature:
        raise ReceiptInvalid(f"the {what} signature does not match") from None


def _jwks_key(jwks: Mapping[str, Any], kid: Any) -> Ed25519PublicKey:
    """The Ed25519 key of ``kid`` in ``jwks``; ReceiptInvalid if it holds none."""
    keys = jwks.get("keys") if isinstance(jwks, Mapping) else None
    for jwk in keys if isinstance(keys, list) else []:
        if (
            isinstance(jwk, dict)
            and isinstance(kid, str)
            and jwk.get("kid") == kid
            and (jwk.get("kty"), jwk.get("crv")) == ("OKP", "Ed25519")
        ):
            try:
                return Ed25519PublicKey.from_public_bytes(_unb64(jwk.get("x")))
            except ValueError:
                raise ReceiptInvalid(f"the JWKS key {kid!r:.60} is not an Ed25519 key") from None
    raise ReceiptInvalid(f"the broker key certificate is signed by an unknown key {kid!r:.60}")


def certificate_key(certificate: str, jwks: Mapping[str, Any]) -> tuple[dict, Ed25519PublicKey]:
    """(claims, public key) of a broker key certificate the JWKS vouches for."""
    header, claims, signed, signature = _parts(certificate, "broker key certificate")
    if header.get("typ") != CERTIFICATE_TYPE:
        raise ReceiptInvalid("the certificate is not a broker key certificate")
    _check(_jwks_key(jwks, header.get("kid")), signature, signed, "broker key certificate")
    try:
        key = Ed25519PublicKey.from_public_bytes(_unb64(claims.get("x")))
    except ValueError:
        raise ReceiptInvalid("the certificate holds no Ed25519 public key") from None
    return claims, key


def verify_receipt(token: str, body: bytes, jwks: Mapping[str, Any]) -> dict[str, Any]:
    """The claims of ``token`` if it verifies (see the module's steps) for ``body``."""
    header, claims, signed, signature = _parts(token, "receipt")
    if header.get("typ") != RECEIPT_TYPE:
        raise ReceiptInvalid("not a lineage receipt")
    certified, key = certificate_key(header.get("crt"), jwks)
    if header.get("kid") != certified.get("kid"):
        raise ReceiptInvalid("the receipt's kid is not its certificate's")
    _check(key, signature, signed, "receipt")
    issued = claims.get("iat")
    nbf, exp = certified.get("nbf"), certified.get("exp")
    if not all(isinstance(v, int) for v in (issued, nbf, exp)) or not nbf <= issued <= exp:
        raise ReceiptInvalid("the receipt was not signed while its broker key was valid")
    response = claims.get("response")
    digest = hashlib.sha256(body).hexdigest()
    if not isinstance(response, dict) or response.get("body_sha256") != digest:
        raise ReceiptInvalid("the body is not the one the receipt was issued for")
    return claims


def request_fingerprint(method: str, path: str, query: str, body: bytes) -> dict[str, str]:
    """What a receipt says of its request: method, path, SHA-256 of the canonical query (its
    pairs sorted) and of the exact body bytes. The broker and the SDK compute it alike."""
    canonical = urlencode(sorted(parse_qsl(query, keep_blank_values=True)))
    return {
        "method": method,
        "path": path,
        "query_sha256": hashlib.sha256(canonical.encode()).hexdigest(),
        "body_sha256": hashlib.sha256(body).hexdigest(),
    }


def receipt_file(token: str, body: bytes) -> bytes:
    """What ``mlsec receipt verify FILE`` reads: the receipt on the first line, then the exact
    body bytes."""
    return token.encode() + b"\n" + body


def read_receipt_file(data: bytes) -> tuple[str, bytes]:
    """(receipt, body) of a :func:`receipt_file`."""
    token, newline, body = data.partition(b"\n")
    if not newline:
        raise ReceiptInvalid("the file holds no body after the receipt's line")
    try:
        return token.decode("ascii").strip(), body
    except UnicodeDecodeError:
        raise ReceiptInvalid("the first line is not a receipt") from None
