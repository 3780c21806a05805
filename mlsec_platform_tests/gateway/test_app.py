"""The gateway's assembly without servers: its OpenAPI contract and its one refusal path.

The services are stand-ins (no OpenBao, S3, NATS or Postgres): what is checked here is the
app's wiring; test_gateway.py checks the same paths against the real servers.
"""

from __future__ import annotations

from types import SimpleNamespace

from fastapi.testclient import TestClient

from mlsec_platform.gateway.app import REFUSAL_STATUSES, create_app
from mlsec_platform.identities.tokens import InvalidToken
from mlsec_platform.settings import PlatformSettings
from mlsec_platform_tests.helpers import PRESENTED, through_the_gate

GOOD_SELLERS = b"seller_id,seller_zip_code_prefix,seller_city,seller_state\ns1,01001,x,SP\n"


class _Verifier:
    """Accepts the token "ok" (scope upload:olist_sellers), refuses any other."""

    def verify(self, token: str | None) -> dict:
        if token != "ok":
            raise InvalidToken("malformed token")
        return {
            "sub": "uploader-1",
            "scope": ["upload:olist_sellers"],
            "cnf": {"x5t#S256": PRESENTED},
        }


class _Services:
    """What create_app and the routes use of GatewayServices; records what it keeps."""

    def __init__(self) -> None:
        self.settings = PlatformSettings()
        self.verifier = _Verifier()
        self.kept: list[tuple] = []
        self.events: list[tuple[str, dict]] = []
        self.audit = SimpleNamespace(emit=lambda kind, payload: self.events.append((kind, payload)))

    def quarantine(self, intake, body: bytes, status: int, reason: str, subject) -> str:
        payload = body if isinstance(body, bytes) else (body.seek(0), body.read())[1]
        self.kept.append((intake, payload, status, reason, subject))
        return f"q{len(self.kept)}", True


def test_the_openapi_contract() -> None:
    spec = create_app(_Services()).openapi()
    operations = {
        (path, method): op["operationId"]
        for path, methods in spec["paths"].items()
        for method, op in methods.items()
    }
    assert operations == {
        ("/v1/files/{source}", "put"): "upload_file_v1_files__source__put",
        ("/v1/events/{domain}", "post"): "publish_events_v1_events__domain__post",
        ("/health", "get"): "health_health_get",
    }
    for methods in spec["paths"].values():
        for op in methods.values():
            for status in REFUSAL_STATUSES:
                schema = op["responses"][str(status)]["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/Refusal"}
    assert set(spec["components"]["schemas"]["Refusal"]["required"]) == {
        "status",
        "reason",
        "quarantine_id",
    }


def test_a_refused_token_is_answered_kept_and_audited_by_the_one_handler() -> None:
    services = _Services()
    client = TestClient(through_the_gate(create_app(services)))  # no lifespan: nothing connects
    keep = services.settings.gateway_quarantine_keep_bytes
    body = GOOD_SELLERS * (2 * keep // len(GOOD_SELLERS))
    response = client.put("/v1/files/olist_sellers", content=body)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json() == {"status": 401, "reason": "malformed token", "quarantine_id": "q1"}
    [(intake, kept, status, reason, subject)] = services.kept
    assert kept == body[:keep] and intake.truncated
    assert (intake.kind, intake.name, status, reason, subject) == (
        "file",
        "olist_sellers",
        401,
        "malformed token",
        None,
    )
    [(event_type, payload)] = services.events
    assert event_type == "ingest.rejected" and payload["quarantine_id"] == "q1"


def test_errors_after_the_token_keep_the_whole_body_and_the_subject() -> None:
    services = _Services()
    client = TestClient(through_the_gate(create_app(services)))
    headers = {"Authorization": "Bearer ok"}
    forbidden = client.put("/v1/files/olist_orders", content=b"x", headers=headers)
    assert forbidden.status_code == 403
    assert forbidden.json()["reason"] == "token of 'uploader-1' does not grant upload:olist_orders"
    empty = client.put("/v1/files/olist_sellers", content=b"", headers=headers)
    assert empty.status_code == 422 and empty.json()["reason"] == "empty upload"
    ragged = GOOD_SELLERS + b"s2,01001\n"
    malformed = client.put("/v1/files/olist_sellers", content=ragged, headers=headers)
    assert malformed.status_code == 422 and "malformed CSV" in malformed.json()["reason"]
    assert [(k[1], k[2], k[4]) for k in services.kept] == [
        (b"x", 403, "uploader-1"),
        (b"", 422, "uploader-1"),
        (ragged, 422, "uploader-1"),
    ]
    assert [e[0] for e in services.events] == ["ingest.rejected"] * 3
