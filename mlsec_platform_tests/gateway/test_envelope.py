"""The gateway's request envelope without servers: every request gets exactly one audit event
(router-level answers and server errors too), and unauthenticated refusals are limited per
address before authentication. The services are the stand-ins of test_app.py; test_gateway.py
checks the same paths against the real servers."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from mlsec_platform.gateway.app import create_app
from mlsec_platform_tests.gateway.test_app import GOOD_SELLERS, _Services
from mlsec_platform_tests.helpers import through_the_gate

OK = {"Authorization": "Bearer ok"}


def _events_by_request(services) -> dict[str, list[tuple[str, dict]]]:
    by_id: dict[str, list[tuple[str, dict]]] = {}
    for kind, payload in services.events:
        by_id.setdefault(payload.get("request_id"), []).append((kind, payload))
    return by_id


def test_every_request_gets_exactly_one_event() -> None:
    services = _Services()
    client = TestClient(through_the_gate(create_app(services)), follow_redirects=False)
    responses = {
        "slash in a name": client.put("/v1/files/olist%2Fsellers", content=b"x", headers=OK),
        "other method": client.get("/v1/files/olist_sellers", headers=OK),
        "method override": client.post(
            "/v1/files/olist_sellers", headers={**OK, "X-HTTP-Method-Override": "PUT"}
        ),
        "trailing slash": client.get("/health/"),
        "nul in a name": client.put("/v1/files/%00", content=b"x"),
        "health": client.get("/health"),
        "forbidden": client.put("/v1/files/olist_orders", content=b"x", headers=OK),
    }
    statuses = {name: r.status_code for name, r in responses.items()}
    assert statuses == {
        "slash in a name": 404,
        "other method": 405,
        "method override": 405,
        "trailing slash": 307,
        "nul in a name": 401,
        "health": 200,
        "forbidden": 403,
    }
    by_id = _events_by_request(services)
    for name, response in responses.items():
        events = by_id.get(response.headers["X-Request-ID"], [])
        assert len(events) == 1, (name, events)
    [(kind, event)] = by_id[responses["other method"].headers["X-Request-ID"]]
    assert kind == "gateway.request" and event["status"] == 405 and event["method"] == "GET"
    [(kind, event)] = by_id[responses["forbidden"].headers["X-Request-ID"]]
    assert kind == "ingest.rejected" and event["subject"] == "uploader-1"
    assert None not in by_id  # no event without its request


def test_a_server_error_is_answered_and_recorded() -> None:
    services = _Services()

    def broken(*args) -> str:
        raise RuntimeError("the quarantine bucket is gone")

    services.quarantine = broken
    client = TestClient(through_the_gate(create_app(services)), raise_server_exceptions=False)
    response = client.put("/v1/files/olist_sellers", content=b"x")
    assert response.status_code == 500
    assert "quarantine bucket" not in response.text  # no internals leak
    [(kind, event)] = _events_by_request(services)[response.headers["X-Request-ID"]]
    assert kind == "gateway.request" and event["status"] == 500


@pytest.mark.parametrize("burst", [3])
def test_unauthenticated_refusals_are_limited_per_address_before_the_body_is_read(burst) -> None:
    services = _Services()
    services.settings = services.settings.model_copy(
        update={"client_refusal_burst": burst, "client_refusal_rate": 0.01}
    )
    client = TestClient(through_the_gate(create_app(services)))
    body = GOOD_SELLERS * 1000
    responses = [client.put("/v1/files/olist_sellers", content=body) for _ in range(2 * burst)]
    assert [r.status_code for r in responses] == [401] * burst + [429] * burst
    assert int(responses[-1].headers["Retry-After"]) >= 1
    assert len(services.kept) == burst  # the refused bodies were not read, nothing kept
    events = [p for _, p in services.events]
    assert sum(p.get("count", 1) for p in events) == 2 * burst
