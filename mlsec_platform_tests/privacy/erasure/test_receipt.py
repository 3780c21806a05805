"""The receipt format: canonical bytes, a signature over them, and any changed byte refused.

Signatures here are ed25519 in transit's own format (``vault:v<n>:<base64>``), made with a
key of the test's own; the stack test (``ops/test_erase.py``) signs and verifies through
OpenBao itself.
"""

from __future__ import annotations

import base64
import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from mlsec_platform.privacy.erasure.receipt import (
    FORMAT,
    ReceiptForged,
    ReceiptMalformed,
    read_receipt,
    receipt_file,
    signed_bytes,
    verify_with_public_keys,
)

KEY = Ed25519PrivateKey.generate()
PUBLIC = {1: KEY.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)}


def receipt(**changes) -> dict:
    body = {
        "format": FORMAT,
        "id": "0b5e6f2c-1111-4222-8333-944455556666",
        "subject": {"kind": "customer_cpf", "keyed_hash": "vault:v1:c2VjcmV0"},
        "reason": "LGPD art. 18 request 42",
        "requested_by": "operator:operator",
        "started_at": "2026-12-03T07:00:00+00:00",
        "finished_at": "2026-12-03T07:00:09+00:00",
        "found": True,
        "searched": ["raw/olist_customers", "silver/customers"],
        "removed": [{"place": "raw/olist_customers", "rows_removed": 1, "version_after": 9}],
    }
    return body | changes


def signed(body: dict, key: Ed25519PrivateKey = KEY) -> bytes:
    signature = "vault:v1:" + base64.b64encode(key.sign(signed_bytes(body))).decode()
    return receipt_file(body, signature)


def test_a_signed_receipt_verifies_and_reads_back():
    data = signed(receipt())
    assert verify_with_public_keys(data, PUBLIC) == receipt()
    assert data.endswith(b"}\n") and data.isascii()


def test_every_single_changed_byte_is_refused():
    data = signed(receipt())
    for position in range(len(data)):
        for replacement in {data[position] ^ 0x01, ord(" ")} - {data[position]}:
            changed = data[:position] + bytes([replacement]) + data[position + 1 :]
            with pytest.raises((ReceiptForged, ReceiptMalformed)):
                verify_with_public_keys(changed, PUBLIC)


def test_a_receipt_signed_by_another_key_is_forged():
    data = signed(receipt(), Ed25519PrivateKey.generate())
    with pytest.raises(ReceiptForged, match="does not match"):
        verify_with_public_keys(data, PUBLIC)
    with pytest.raises(ReceiptForged, match="no known key"):
        verify_with_public_keys(signed(receipt()), {2: PUBLIC[1]})


def test_the_same_receipt_reformatted_is_not_the_signed_file():
    data = signed(receipt())
    document = json.loads(data)
    for other in (json.dumps(document), json.dumps(document, indent=4)):
        with pytest.raises(ReceiptMalformed, match="byte for byte"):
            read_receipt(other.encode())


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (b"\xff\xfe", "not a JSON receipt"),
        (b"[]", "expected receipt, signature and signed_with"),
        (
            b'{"receipt": {}, "signature": "x", "signed_with": "transit/erasure-receipts"}',
            "not a mlsec-erasure-receipt/1",
        ),
    ],
)
def test_what_is_not_a_receipt_is_refused_as_input(data, says):
    with pytest.raises(ReceiptMalformed, match=says) as refused:
        read_receipt(data)
    assert refused.value.http_status == 400


def test_a_receipt_missing_a_field_is_malformed():
    body = receipt()
    del body["reason"]
    signature = "vault:v1:" + base64.b64encode(KEY.sign(signed_bytes(body))).decode()
    with pytest.raises(ReceiptMalformed, match="lacks reason"):
        read_receipt(receipt_file(body, signature))
