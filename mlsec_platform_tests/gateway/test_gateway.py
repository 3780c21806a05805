"""The gateway accepts what matches a contract; everything else is refused, kept and audited."""

import base64
import json
import time
import uuid

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from mlsec_platform.settings import Zone
from mlsec_platform_tests.helpers import audit_events, audit_head, s3_admin, upload_token

SELLERS_HEADER = "seller_id,seller_zip_code_prefix,seller_city,seller_state\n"
GOOD_SELLERS = SELLERS_HEADER + "s1,01001,São Paulo,SP\ns2,20000,Rio de Janeiro,RJ\n"


def _event(**overrides):
    event = {
        "event_id": str(uuid.uuid4()),
        "event_type": "order_created",
        "order_id": "o1",
        "customer_id": "c1",
        "status": "created",
        "occurred_at": "2017-10-02T10:56:33Z",
        "seller_id": None,
    }
    return {**event, **overrides}


def _objects(supervisor, settings, zone: Zone, prefix: str) -> set[str]:
    listing = s3_admin(supervisor, settings).list_objects_v2(
        Bucket=settings.bucket(zone), Prefix=prefix
    )
    return {o["Key"] for o in listing.get("Contents", [])}


def test_a_good_file_lands_with_its_metadata(gateway, uploader, supervisor, settings):
    response = gateway.put(
        "/v1/files/olist_sellers", content=GOOD_SELLERS.encode(), headers=uploader
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["rows"] == 2 and body["contract_version"] == 1
    head = s3_admin(supervisor, settings).head_object(
        Bucket=settings.bucket(Zone.LANDING), Key=body["landing_key"]
    )
    assert head["Metadata"]["sha256"] == body["sha256"]
    assert head["Metadata"]["uploader"] == "uploader-1"
    assert head["Metadata"]["rows"] == "2"


def test_formula_cells_are_neutralized_but_numbers_are_not(gateway, uploader, supervisor, settings):
    csv = (
        SELLERS_HEADER
        + 's3,=HYPERLINK("x"),@SUM(A1),-12.5\n'
        + "s4,+cmd|' /C calc'!A0,+55 (11) 91234-5678,\t=1\n"
    )
    response = gateway.put("/v1/files/olist_sellers", content=csv.encode(), headers=uploader)
    assert response.status_code == 201
    assert response.json()["neutralized_cells"] == 4
    landing = s3_admin(supervisor, settings).get_object(
        Bucket=settings.bucket(Zone.LANDING), Key=response.json()["landing_key"]
    )
    stored = landing["Body"].read().decode()
    assert "'=HYPERLINK" in stored and "'@SUM(A1)" in stored and "'+cmd|" in stored
    assert "-12.5" in stored and "'-12.5" not in stored
    assert "+55 (11) 91234-5678" in stored and "'+55" not in stored


BAD_FILES = {
    "wrong header": (
        b"seller,zip,city,state\ns1,1,x,SP\n",
        "olist_sellers",
        422,
        "header does not match",
    ),
    "binary disguised as csv": (
        b"PK\x03\x04" + bytes(range(256)) * 4,
        "olist_sellers",
        415,
        "zip archive",
    ),
    "nul bytes": (SELLERS_HEADER.encode() + b"s1,\x00\x01\x02,x,SP\n", "olist_sellers", 415, "NUL"),
    "broken utf-8": (
        SELLERS_HEADER.encode() + b"s1,01001,S\xe3o Paulo,SP\n",
        "olist_sellers",
        422,
        "not valid UTF-8",
    ),
    "ragged rows": (SELLERS_HEADER.encode() + b"s1,01001\n", "olist_sellers", 422, "malformed CSV"),
    "missing key": (
        SELLERS_HEADER.encode() + b",01001,x,SP\n",
        "olist_sellers",
        422,
        "seller_id (required)",
    ),
    "unknown source": (GOOD_SELLERS.encode(), "olist_unicorns", 404, "unknown source"),
    "empty": (b"", "olist_sellers", 422, "empty upload"),
}


@pytest.mark.parametrize("case", list(BAD_FILES), ids=list(BAD_FILES))
def test_bad_files_are_refused_kept_and_audited(
    case, gateway, uploader, supervisor, settings, superuser_dsn
):
    body, source, status, reason = BAD_FILES[case]
    landing_before = _objects(supervisor, settings, Zone.LANDING, "incoming/")
    seq = audit_head(superuser_dsn)
    response = gateway.put(f"/v1/files/{source}", content=body, headers=uploader)
    assert response.status_code == status, response.text
    refusal = response.json()
    assert reason in refusal["reason"]
    _assert_kept(refusal, body, supervisor, settings, superuser_dsn, seq, "gateway/file/")
    assert _objects(supervisor, settings, Zone.LANDING, "incoming/") == landing_before


def _assert_kept(refusal, body, supervisor, settings, superuser_dsn, seq, prefix):
    qid = refusal["quarantine_id"]
    admin = s3_admin(supervisor, settings)
    bucket = settings.bucket(Zone.QUARANTINE)
    kept = admin.get_object(Bucket=bucket, Key=f"{prefix}{qid}/payload")["Body"].read()
    assert kept == body
    record = json.loads(
        admin.get_object(Bucket=bucket, Key=f"{prefix}{qid}/reason.json")["Body"].read()
    )
    assert record["reason"] == refusal["reason"] and record["status"] == refusal["status"]
    [event] = [
        e for e in audit_events(superuser_dsn, "ingest.rejected", seq) if e["quarantine_id"] == qid
    ]
    assert event["reason"] == refusal["reason"]


def test_an_upload_declared_over_the_cap_is_refused_unread(
    gateway, uploader, settings, supervisor, superuser_dsn, monkeypatch
):
    monkeypatch.setattr(settings, "gateway_max_file_bytes", 1024)
    body = (SELLERS_HEADER + "s,01001,x,SP\n" * 200).encode()
    seq = audit_head(superuser_dsn)
    response = gateway.put("/v1/files/olist_sellers", content=body, headers=uploader)
    assert response.status_code == 413
    refusal = response.json()
    assert f"declares {len(body)} bytes, more than the 1024" in refusal["reason"]
    # Refused on its Content-Length, before a byte of it was read: nothing of it is kept.
    _assert_kept(refusal, b"", supervisor, settings, superuser_dsn, seq, "gateway/file/")


def test_events_are_published_once_per_event_id(gateway, uploader):
    events = [_event() for _ in range(3)]
    first = gateway.post("/v1/events/order_status", content=json.dumps(events), headers=uploader)
    assert first.status_code == 202 and first.json()["accepted"] == 3
    again = gateway.post("/v1/events/order_status", content=json.dumps(events), headers=uploader)
    assert again.json() == {**first.json(), "accepted": 0, "duplicates": 3}


BAD_EVENTS = {
    "malformed json": (b'[{"event_id": "x",', "order_status", 400, "malformed JSON"),
    "schema violation": (
        json.dumps([_event(status=7)]).encode(),
        "order_status",
        422,
        "wrong type",
    ),
    "missing field": (
        json.dumps([{"event_id": "x"}]).encode(),
        "order_status",
        422,
        "missing required",
    ),
    "unknown field": (
        json.dumps([_event(credit_card="4111")]).encode(),
        "order_status",
        422,
        "unknown fields credit_card",
    ),
    "unknown domain": (json.dumps([_event()]).encode(), "payments_v9", 404, "unknown event domain"),
}


@pytest.mark.parametrize("case", list(BAD_EVENTS), ids=list(BAD_EVENTS))
def test_bad_events_are_refused_kept_and_audited(
    case, gateway, uploader, supervisor, settings, superuser_dsn
):
    body, domain, status, reason = BAD_EVENTS[case]
    seq = audit_head(superuser_dsn)
    response = gateway.post(f"/v1/events/{domain}", content=body, headers=uploader)
    assert response.status_code == status, response.text
    assert reason in response.json()["reason"]
    _assert_kept(response.json(), body, supervisor, settings, superuser_dsn, seq, "gateway/events/")


def _forged(settings, endpoints, kind: str) -> str | None:
    now = int(time.time())
    claims = {
        "iss": "mlsec-local",
        "sub": "mallory",
        "aud": "mlsec-gateway",
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        "scope": ["upload:*"],
    }
    if kind == "missing":
        return None
    if kind == "expired":
        return upload_token(settings, endpoints, "upload:*", ttl_seconds=-60)
    if kind == "not yet valid":
        return upload_token(settings, endpoints, "upload:*", not_before=now + 3600)
    if kind == "wrong audience":
        return upload_token(settings, endpoints, "upload:*", audience="mlsec-broker")
    if kind == "wrongly signed":
        return jwt.encode(
            claims,
            Ed25519PrivateKey.generate(),
            algorithm="EdDSA",
            headers={"kid": "mlsec-issuer:v1"},
        )
    if kind == "alg none":
        return jwt.encode(claims, None, algorithm="none", headers={"kid": "mlsec-issuer:v1"})
    if kind == "hs256 with the public key":
        from mlsec_platform_tests.helpers import operator_vault

        public = operator_vault(settings, endpoints).secrets.transit.read_key("mlsec-issuer")
        secret = base64.b64decode(public["data"]["keys"]["1"]["public_key"])
        return jwt.encode(claims, secret, algorithm="HS256", headers={"kid": "mlsec-issuer:v1"})
    if kind == "unknown kid":
        return jwt.encode(
            claims,
            Ed25519PrivateKey.generate(),
            algorithm="EdDSA",
            headers={"kid": "mlsec-issuer:v99"},
        )
    raise AssertionError(kind)


TOKEN_ATTACKS = [
    "missing",
    "expired",
    "not yet valid",
    "wrong audience",
    "wrongly signed",
    "alg none",
    "hs256 with the public key",
    "unknown kid",
]


@pytest.mark.parametrize("attack", TOKEN_ATTACKS)
def test_bad_tokens_are_refused_and_the_upload_kept(
    attack, gateway, supervisor, settings, endpoints, superuser_dsn
):
    token = _forged(settings, endpoints, attack)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    seq = audit_head(superuser_dsn)
    response = gateway.put(
        "/v1/files/olist_sellers", content=GOOD_SELLERS.encode(), headers=headers
    )
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"] == "Bearer"
    _assert_kept(
        response.json(),
        GOOD_SELLERS.encode(),
        supervisor,
        settings,
        superuser_dsn,
        seq,
        "gateway/file/",
    )


def test_a_token_without_the_scope_is_forbidden(gateway, settings, endpoints):
    token = upload_token(settings, endpoints, "upload:olist_orders")
    response = gateway.put(
        "/v1/files/olist_sellers",
        content=GOOD_SELLERS.encode(),
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 403
    assert "does not grant upload:olist_sellers" in response.json()["reason"]


def test_the_gateway_cannot_write_raw(settings, endpoints):
    from mlsec_platform_tests.helpers import s3_as, s3_error_code

    s3 = s3_as("gateway", settings, endpoints)
    raw = settings.bucket(Zone.RAW)
    assert s3_error_code(lambda: s3.put_object(Bucket=raw, Key="x", Body=b"x")) == "AccessDenied"


def test_without_a_token_only_the_first_kibibyte_is_kept(
    gateway, supervisor, settings, superuser_dsn
):
    body = GOOD_SELLERS.encode() + b"s,01001,x,SP\n" * 200_000  # about 2.6 MB
    keep = settings.gateway_quarantine_keep_bytes
    assert keep == 1024
    seq = audit_head(superuser_dsn)
    response = gateway.put("/v1/files/olist_sellers", content=body)
    assert response.status_code == 401
    _assert_kept(
        response.json(),
        body[:keep],
        supervisor,
        settings,
        superuser_dsn,
        seq,
        "gateway/file/",
    )


def test_a_forbidden_upload_is_audited_with_its_subject(
    gateway, settings, endpoints, superuser_dsn
):
    token = upload_token(settings, endpoints, "upload:olist_orders", subject="carol")
    seq = audit_head(superuser_dsn)
    response = gateway.put(
        "/v1/files/olist_sellers",
        content=GOOD_SELLERS.encode(),
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 403
    [event] = audit_events(superuser_dsn, "ingest.rejected", seq)
    assert event["subject"] == "carol" and event["status"] == 403
