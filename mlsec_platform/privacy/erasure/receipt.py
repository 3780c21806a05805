"""Erasure receipts: what one erasure removed where, signed by an OpenBao transit key.

A receipt file is one JSON document, ``{"receipt": {...}, "signature": "vault:v<n>:...",
"signed_with": "transit/erasure-receipts"}``, written in one canonical form (keys sorted,
two-space indent, ASCII, one final newline). The signature (ed25519, made by OpenBao: the
private key never leaves it) covers the receipt's compact canonical bytes. Verifying checks
both: the file must be byte for byte its own canonical form, so a changed byte anywhere (in a
value, in the signature or in the layout) fails.

The subject appears only as its kind and a keyed hash of ``<kind>=<value>`` (transit HMAC with
the same key): the person can be told "your erasure is receipt X" by hashing again, and the
receipt names nobody to whoever reads it.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any

import hvac
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from mlsec_platform.errors import InvalidInput, MlsecError

FORMAT = "mlsec-erasure-receipt/1"
#: The transit key (ed25519) that signs receipts and keys the subject hash.
RECEIPT_KEY = "erasure-receipts"
SIGNED_WITH = f"transit/{RECEIPT_KEY}"
#: A transit signature: key version and base64 signature.
SIGNATURE = re.compile(r"vault:v([1-9][0-9]{0,8}):([A-Za-z0-9+/]+={0,2})")
#: Fields every receipt has.
REQUIRED = (
    "format", "id", "subject", "reason", "requested_by", "started_at", "finished_at", "found",
    "searched", "removed",
)  # fmt: skip


class ReceiptMalformed(InvalidInput):
    """The file is not a receipt in its canonical form (changed, truncated or not one)."""


class ReceiptForged(MlsecError):
    """The receipt's signature does not match its content: it was changed after signing."""

    http_status = 422


def _compact(receipt: dict[str, Any]) -> bytes:
    return json.dumps(receipt, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def _canonical(document: dict[str, Any]) -> bytes:
    return (json.dumps(document, sort_keys=True, indent=2, ensure_ascii=True) + "\n").encode()


def subject_hash(client: hvac.Client, kind: str, value: str) -> str:
    """Transit HMAC-SHA256 of ``<kind>=<value>`` under the receipt key (``vault:v<n>:...``)."""
    data = base64.b64encode(f"{kind}={value}".encode()).decode()
    return client.secrets.transit.generate_hmac(RECEIPT_KEY, data)["data"]["hmac"]


def sign_receipt(client: hvac.Client, receipt: dict[str, Any]) -> bytes:
    """The receipt file's bytes, signed by OpenBao."""
    missing = [k for k in REQUIRED if k not in receipt]
    if missing or receipt.get("format") != FORMAT:
        raise ValueError(f"not a complete {FORMAT} receipt: missing {missing}")
    data = base64.b64encode(_compact(receipt)).decode()
    signature = client.secrets.transit.sign_data(RECEIPT_KEY, data)["data"]["signature"]
    return receipt_file(receipt, signature)


def receipt_file(receipt: dict[str, Any], signature: str) -> bytes:
    """The file of ``receipt`` with ``signature`` (over :func:`signed_bytes`)."""
    return _canonical({"receipt": receipt, "signature": signature, "signed_with": SIGNED_WITH})


def signed_bytes(receipt: dict[str, Any]) -> bytes:
    """What the signature covers: the receipt's compact canonical JSON."""
    return _compact(receipt)


def read_receipt(data: bytes) -> tuple[dict[str, Any], str]:
    """(receipt, signature) of a receipt file that is exactly in its canonical form."""
    try:
        document = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ReceiptMalformed(f"not a JSON receipt ({type(exc).__name__})") from None
    if not isinstance(document, dict) or set(document) != {"receipt", "signature", "signed_with"}:
        raise ReceiptMalformed("not a receipt: expected receipt, signature and signed_with")
    receipt, signature = document["receipt"], document["signature"]
    if not isinstance(receipt, dict) or receipt.get("format") != FORMAT:
        raise ReceiptMalformed(f"not a {FORMAT} receipt")
    if document["signed_with"] != SIGNED_WITH or not isinstance(signature, str):
        raise ReceiptMalformed(f"a receipt is signed with {SIGNED_WITH}")
    missing = [k for k in REQUIRED if k not in receipt]
    if missing:
        raise ReceiptMalformed(f"the receipt lacks {', '.join(missing)}")
    if _canonical(document) != data:
        raise ReceiptMalformed("the file is not byte for byte the receipt as signed")
    return receipt, signature


def verify_receipt(client: hvac.Client, data: bytes) -> dict[str, Any]:
    """The receipt, if OpenBao says its signature is valid; else ReceiptForged/Malformed."""
    receipt, signature = read_receipt(data)
    body = base64.b64encode(_compact(receipt)).decode()
    try:
        valid = client.secrets.transit.verify_signed_data(RECEIPT_KEY, body, signature=signature)[
            "data"
        ]["valid"]
    except hvac.exceptions.InvalidRequest:
        valid = False  # a signature OpenBao cannot parse: not one of its own
    if not valid:
        raise ReceiptForged(f"receipt {receipt.get('id')}: the signature does not match")
    return receipt


def verify_with_public_keys(data: bytes, public_keys: dict[int, bytes]) -> dict[str, Any]:
    """The same check offline, with the key's public halves (``transit/keys/<key>``), by
    version: for auditors who hold the public key and no OpenBao login."""
    receipt, signature = read_receipt(data)
    shape = SIGNATURE.fullmatch(signature)
    key = public_keys.get(int(shape[1])) if shape else None
    try:
        raw = base64.b64decode(shape[2], validate=True) if shape else b""
    except binascii.Error:
        key = None
    if key is None:
        raise ReceiptForged(f"receipt {receipt.get('id')}: no known key signed it")
    try:
        Ed25519PublicKey.from_public_bytes(key).verify(raw, _compact(receipt))
    except InvalidSignature:
        raise ReceiptForged(f"receipt {receipt.get('id')}: the signature does not match") from None
    return receipt


def public_keys(client: hvac.Client) -> dict[int, bytes]:
    """The receipt key's public halves by version."""
    keys = client.secrets.transit.read_key(RECEIPT_KEY)["data"]["keys"]
    return {int(v): base64.b64decode(k["public_key"]) for v, k in keys.items()}
