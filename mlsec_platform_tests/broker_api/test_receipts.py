"""Lineage receipts on the real broker: they verify against the receipt JWKS, restate the
request, decision and Delta versions of the answer, and are recorded in its audit event; one
changed byte anywhere, or a certificate not signed by the transit key ``broker-receipts``,
fails verification. Two broker processes certify keys of their own, both verifiable."""

from __future__ import annotations

import base64
import hashlib
import time

import httpx
import hvac
import orjson
import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from broker_api.client import BrokerClient, ReceiptInvalid, verify_receipt
from broker_api.client.receipts import (
    CERTIFICATE_TYPE,
    RECEIPT_HEADER,
    RECEIPT_TYPE,
    b64url,
    receipt_file,
)
from broker_api.receipts import ReceiptSigner
from mlsec_platform.cli import main
from mlsec_platform.stack.ports import PortAllocator
from mlsec_platform_tests.broker_api.conftest import FACT, bearer, ok, post_query
from mlsec_platform_tests.helpers import audit_events, https_client, operator_vault

ON = {RECEIPT_HEADER: "on"}


def _segments(token: str) -> list[str]:
    return token.split(".")


def _decoded(segment: str) -> dict:
    return orjson.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))


def _with_payload(token: str, change) -> str:
    """``token`` with its payload changed by ``change`` (the signature kept)."""
    header, payload, signature = _segments(token)
    claims = _decoded(payload)
    change(claims)
    return f"{header}.{b64url(orjson.dumps(claims))}.{signature}"


def _jwks(http, token: str) -> dict:
    return ok(http.get("/receipts/jwks", headers=bearer(token)))


@pytest.fixture
def receipted(http, mint):
    """An answer to a /query asking for a receipt: (response, receipt, jwks, token)."""
    token = mint("analyst_conf")
    response = http.post(
        "/query",
        json={"dataset": FACT, "columns": ["order_id", "price", "customer_state"], "limit": 3},
        headers={**bearer(token), **ON},
    )
    assert response.status_code == 200, response.text
    return response, response.headers[RECEIPT_HEADER], _jwks(http, token), token


def test_a_receipt_restates_the_answer_and_verifies(receipted, superuser_dsn) -> None:
    response, receipt, jwks, _ = receipted
    body = response.json()
    claims = verify_receipt(receipt, response.content, jwks)
    assert claims["response"]["body_sha256"] == hashlib.sha256(response.content).hexdigest()
    asked = claims["request"]
    sent = response.request
    assert (asked["method"], asked["path"]) == ("POST", "/query")
    assert asked["body_sha256"] == hashlib.sha256(sent.content).hexdigest()
    assert asked["subject"].startswith("analyst_conf-") and asked["purpose"] == "analytics"
    assert asked["project"] == "olist-br"
    decision = claims["decision"]
    assert decision["decision_id"] == body["policy"]["decision_id"]
    assert decision["policy_version"] == body["policy"]["policy_version"]
    assert decision["policy_ids"] == body["policy"]["policy_ids"]
    assert decision["columns"] == ["order_id", "price", "customer_state"]
    [read] = claims["datasets"]
    lineage = body["lineage"]
    assert read["dataset"] == FACT and read["delta_version"] == lineage["delta_version"]
    assert read["run_id"] == lineage["run_id"] and read["run_id"]
    assert read["code_version"] == lineage["code_version"]
    assert read["upstream"] == lineage["upstream"]
    assert claims["request_id"] == body["request_id"]
    # The request's one audit event names the receipt.
    deadline = time.monotonic() + 10
    while True:
        events = [
            e
            for e in audit_events(superuser_dsn, "broker.request")
            if e["request_id"] == body["request_id"]
        ]
        if events or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert len(events) == 1 and events[0]["receipt_id"] == claims["jti"]


def test_one_changed_byte_breaks_it(receipted) -> None:
    response, receipt, jwks, _ = receipted
    body = bytearray(response.content)
    at = body.index(b'"price"')  # a byte of the data, not of the layout
    body[at + 2] ^= 0x01
    with pytest.raises(ReceiptInvalid, match="body"):
        verify_receipt(receipt, bytes(body), jwks)

    def decision(claims):
        claims["decision"]["policy_version"] += "x"

    def version(claims):
        claims["datasets"][0]["delta_version"] += 1

    def upstream(claims):
        claims["datasets"][0]["upstream"][0]["delta_version"] += 1

    def masks(claims):
        claims["decision"]["masks"].append({"column": "price", "mask": "redact"})

    for change in (decision, version, upstream, masks):
        with pytest.raises(ReceiptInvalid, match="receipt signature"):
            verify_receipt(_with_payload(receipt, change), response.content, jwks)
    header, payload, signature = _segments(receipt)
    flipped = b64url(bytes([base64.urlsafe_b64decode(signature + "==")[0] ^ 1])) + signature[2:]
    with pytest.raises(ReceiptInvalid):
        verify_receipt(f"{header}.{payload}.{flipped}", response.content, jwks)


def _certificate(sign, kid: str, public: bytes) -> str:
    """A broker key certificate for ``public`` under ``kid``, signed by ``sign``."""
    now = int(time.time())
    header = b64url(orjson.dumps({"alg": "EdDSA", "typ": CERTIFICATE_TYPE, "kid": kid}))
    claims = {"iss": "mlsec-broker", "sub": "forger", "kid": "k", "x": b64url(public)}
    claims.update(iat=now, nbf=now - 5, exp=now + 600)
    signing_input = f"{header}.{b64url(orjson.dumps(claims))}"
    return f"{signing_input}.{b64url(sign(signing_input.encode()))}"


def _forged(receipt: str, certificate: str, key: Ed25519PrivateKey) -> str:
    """``receipt``'s claims signed by ``key`` under ``certificate``."""
    header = {"alg": "EdDSA", "typ": RECEIPT_TYPE, "kid": "k", "crt": certificate}
    signing_input = f"{b64url(orjson.dumps(header))}.{_segments(receipt)[1]}"
    return f"{signing_input}.{b64url(key.sign(signing_input.encode()))}"


def test_a_receipt_signed_by_another_key_is_refused(receipted, settings, endpoints) -> None:
    response, receipt, jwks, _ = receipted
    kid = _decoded(_segments(_decoded(_segments(receipt)[0])["crt"])[0])["kid"]
    assert kid.startswith("broker-receipts:v") and kid in {k["kid"] for k in jwks["keys"]}
    key = Ed25519PrivateKey.generate()
    public = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    # A self-made certificate that claims the transit key's kid.
    self_made = _certificate(Ed25519PrivateKey.generate().sign, kid, public)
    with pytest.raises(ReceiptInvalid, match="certificate signature"):
        verify_receipt(_forged(receipt, self_made, key), response.content, jwks)
    # A certificate signed by OpenBao, but with another transit key.
    vault = operator_vault(settings, endpoints)

    def erasure_key(data: bytes) -> bytes:
        signed = vault.secrets.transit.sign_data(
            "erasure-receipts", base64.b64encode(data).decode()
        )["data"]["signature"]
        return base64.b64decode(signed.rsplit(":", 1)[1])

    for claimed in (kid, "erasure-receipts:v1"):
        other = _certificate(erasure_key, claimed, public)
        with pytest.raises(ReceiptInvalid, match="certificate"):
            verify_receipt(_forged(receipt, other, key), response.content, jwks)
    # The untouched receipt still verifies: the refusals above are the keys', nothing else.
    assert verify_receipt(receipt, response.content, jwks)["jti"]


def test_receipts_only_when_asked(http, mint) -> None:
    token = mint("analyst_conf")
    plain = post_query(http, token, limit=1)
    assert plain.status_code == 200 and RECEIPT_HEADER not in plain.headers
    off = http.post(
        "/query",
        json={"dataset": FACT, "columns": ["order_id"], "limit": 1},
        headers={**bearer(token), RECEIPT_HEADER: "off"},
    )
    assert off.status_code == 200 and RECEIPT_HEADER not in off.headers
    bad = http.post(
        "/query",
        json={"dataset": FACT, "columns": ["order_id"], "limit": 1},
        headers={**bearer(token), RECEIPT_HEADER: "please"},
    )
    assert bad.status_code == 400 and RECEIPT_HEADER in bad.json()["reason"].lower()
    # Refusals carry none.
    denied = http.post(
        "/query",
        json={"dataset": "gold/nope", "columns": ["x"], "limit": 1},
        headers={**bearer(token), **ON},
    )
    assert denied.status_code in (403, 404) and RECEIPT_HEADER not in denied.headers


def test_feature_vectors_and_the_catalog_carry_receipts(http, mint, curated) -> None:
    token = mint("analyst_conf")
    jwks = _jwks(http, token)
    vector = http.get(
        "/feature/vector",
        params=[("group", "customer_rfm"), ("entity", "nobody"), ("entity", "x")],
        headers={**bearer(token), **ON},
    )
    assert vector.status_code == 200, vector.text
    claims = verify_receipt(vector.headers[RECEIPT_HEADER], vector.content, jwks)
    query = "entity=nobody&entity=x&group=customer_rfm"
    assert claims["request"]["query_sha256"] == hashlib.sha256(query.encode()).hexdigest()
    assert claims["datasets"][0]["delta_version"] == vector.json()["lineage"]["delta_version"]
    catalog = http.get("/catalog/datasets", headers={**bearer(token), **ON})
    claims = verify_receipt(catalog.headers[RECEIPT_HEADER], catalog.content, jwks)
    assert claims["datasets"] == [] and claims["request"]["path"] == "/catalog/datasets"


def test_no_certified_key_no_answer(broker, http, mint, superuser_dsn) -> None:
    """Fail closed: with no certificate from OpenBao, a request asking for a receipt gets 503
    (audited), and one not asking is served."""
    services = broker.services
    held = services.receipts

    nowhere = f"https://127.0.0.1:{PortAllocator().take()}"  # a free port: nothing listens

    try:
        services.receipts = ReceiptSigner(lambda: hvac.Client(url=nowhere, timeout=1))
        token = mint("analyst_conf")
        refused = http.post(
            "/query",
            json={"dataset": FACT, "columns": ["order_id"], "limit": 1},
            headers={**bearer(token), **ON},
        )
        assert refused.status_code == 503 and "receipt" in refused.json()["reason"]
        assert refused.headers["retry-after"] == "5"
        assert post_query(http, token, limit=1).status_code == 200
    finally:
        services.receipts = held


def test_the_sdk_verifies_and_attaches_receipts(broker, mint, client_tls) -> None:
    with BrokerClient(broker.url, mint("analyst_conf"), tls=client_tls, receipts=True) as client:
        frame = client.query(FACT, ["order_id", "price"], limit=250, page_size=100)
        receipts = frame.attrs["receipts"]
        assert len(receipts) == 3 and frame.attrs["receipt"] == receipts[0]
        assert [r["claims"]["request_id"] for r in receipts] == frame.attrs["request_ids"]
        assert (
            receipts[0]["claims"]["datasets"][0]["delta_version"]
            == (frame.attrs["lineage"]["delta_version"])
        )
    with BrokerClient(broker.url, mint("analyst_conf"), tls=client_tls) as client:
        assert "receipt" not in client.query(FACT, ["order_id"], limit=1).attrs


class _Tampering(httpx.BaseTransport):
    """The real connection to the broker, with one byte of each answer's body changed on the
    way (an interception the receipt must reveal)."""

    def __init__(self, tls) -> None:
        self._inner = httpx.HTTPTransport(verify=tls.ssl_context())

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self._inner.handle_request(request)
        body = bytearray(response.read())
        if request.url.path == "/query":
            at = body.index(b'"rows"')
            body[at + 1] = ord("R")
        return httpx.Response(response.status_code, headers=response.headers, content=bytes(body))

    def close(self) -> None:
        self._inner.close()


def test_the_sdk_refuses_a_tampered_answer(broker, mint, client_tls) -> None:
    token = mint("analyst_conf")
    transport = _Tampering(client_tls)
    client = BrokerClient(broker.url, token, transport=transport, receipts=True)
    with client, pytest.raises(ReceiptInvalid, match="body"):
        client.query(FACT, ["order_id"], limit=1)


def test_two_broker_processes_each_certify_their_own_key(
    tight_broker, broker_process, mint, client_tls
) -> None:
    token = mint("probe", project="probe-11")
    seen = []
    for url in (tight_broker.url, broker_process.url):
        with https_client(url, client_tls) as http:
            jwks = _jwks(http, token)
            response = http.post(
                "/query",
                json={"dataset": FACT, "columns": ["order_id"], "limit": 1},
                headers={**bearer(token), **ON},
            )
            assert response.status_code == 200, response.text
            receipt = response.headers[RECEIPT_HEADER]
            seen.append(
                (receipt, response.content, verify_receipt(receipt, response.content, jwks))
            )
    (first, _, a), (second, body, b) = seen
    assert a["iss"] != b["iss"]  # two processes, two certified keys
    # The other process's receipt verifies with the first one's JWKS: one root, no shared state.
    assert verify_receipt(second, body, jwks)["jti"] == b["jti"]


def test_mlsec_receipt_verify(receipted, tmp_path, settings) -> None:
    response, receipt, jwks, _ = receipted
    whole = tmp_path / "answer.receipt"
    whole.write_bytes(receipt_file(receipt, response.content))
    keys = tmp_path / "jwks.json"
    keys.write_bytes(orjson.dumps(jwks))
    offline = CliRunner().invoke(main, ["receipt", "verify", str(whole), "--jwks", str(keys)])
    assert offline.exit_code == 0, offline.output
    assert "verified" in offline.output and FACT.split("/")[1] in offline.output
    # Receipt and body in two files, the keys read from the running stack's OpenBao.
    alone, body = tmp_path / "receipt.jws", tmp_path / "body.json"
    alone.write_text(receipt)
    body.write_bytes(response.content)
    online = CliRunner().invoke(main, ["receipt", "verify", str(alone), "--body", str(body)])
    assert online.exit_code == 0, online.output
    body.write_bytes(response.content.replace(b'"rows"', b'"Rows"'))
    changed = CliRunner().invoke(main, ["receipt", "verify", str(alone), "--body", str(body)])
    assert changed.exit_code == 1 and "not the one" in changed.output
