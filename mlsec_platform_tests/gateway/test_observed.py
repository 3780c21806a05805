"""The gateway's metrics (requests, bytes, refusals, latency; only for the scraper holding
the credential) and its one JSON log line per request, which never holds the token or the
body. (The app over stand-in services, as test_app.py.)"""

from __future__ import annotations

import io
import json
import logging

from fastapi.testclient import TestClient

from mlsec_platform.gateway.app import create_app
from mlsec_platform.telemetry.request_log import LOGGER
from mlsec_platform_tests.gateway.test_app import GOOD_SELLERS, _Services
from mlsec_platform_tests.helpers import through_the_gate

SECRET = "gateway-scrape-credential-0123456789"


def test_metrics_and_one_log_line_per_request(tmp_path) -> None:
    credential = tmp_path / "scrape"
    credential.write_text(SECRET)
    services = _Services()
    services.settings = services.settings.model_copy(update={"metrics_credential_file": credential})
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger = logging.getLogger(LOGGER)
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        client = TestClient(through_the_gate(create_app(services)))
        bad = client.put(
            "/v1/files/olist_sellers",
            content=GOOD_SELLERS,
            headers={"Authorization": "Bearer not-a-token-4242"},
        )
        good = client.put(
            "/v1/files/olist_orders", content=b"x", headers={"Authorization": "Bearer ok"}
        )
        refused = client.get("/metrics", headers={"Authorization": "Bearer wrong"})
        scraped = client.get("/metrics", headers={"Authorization": f"Bearer {SECRET}"})
    finally:
        logger.removeHandler(handler)
    assert (bad.status_code, good.status_code, refused.status_code) == (401, 403, 401)
    assert scraped.status_code == 200
    text = scraped.text
    assert 'gateway_requests_total{route="/v1/files/{source}",status="401"} 1.0' in text
    assert 'gateway_refusals_total{status="403"} 1.0' in text
    # The first request's body was read only as far as kept (its token was refused first).
    assert 'gateway_received_bytes_total{name="olist_sellers"}' in text
    assert 'gateway_request_seconds_count{route="/v1/files/{source}"} 2.0' in text

    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [(x["route"], x["status"], x["decision"]) for x in lines] == [
        ("/v1/files/{source}", 401, "denied"),
        ("/v1/files/{source}", 403, "denied"),
        ("/metrics", 401, "denied"),
        ("/metrics", 200, "allowed"),
    ]
    assert lines[0]["request_id"] == bad.headers["x-request-id"]
    assert lines[1]["subject"] == "uploader-1" and lines[1]["dataset"] == "olist_orders"
    assert "subject" not in lines[0]  # its token was refused: nobody is known
    logged = stream.getvalue()
    assert "not-a-token-4242" not in logged and SECRET not in logged and "wrong" not in logged
    assert "seller_id" not in logged  # nothing of the body


def test_metrics_are_refused_without_a_configured_credential() -> None:
    client = TestClient(through_the_gate(create_app(_Services())))
    response = client.get("/metrics", headers={"Authorization": f"Bearer {SECRET}"})
    assert response.status_code == 403
    assert "MLSEC_METRICS_CREDENTIAL_FILE" in response.json()["reason"]
    assert "gateway_requests_total" not in response.text
