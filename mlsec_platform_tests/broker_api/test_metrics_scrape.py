"""/metrics needs the scrape credential: its counters name datasets, refusal kinds and load,
which are for the people who run the broker, not for every caller of its API."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from broker_api.metrics import ScrapeCredential
from mlsec_platform.errors import ConfigurationError
from mlsec_platform.settings import PlatformSettings
from mlsec_platform_tests.broker_api.test_app import broker as broker  # noqa: F401 - fixture

SECRET = "s3cr3t-scrape-credential-0123456789"


@pytest.fixture
def client(broker, tmp_path):  # noqa: F811
    services, app = broker
    path = tmp_path / "scrape"
    path.write_text(SECRET + "\n")
    services.scrape = ScrapeCredential.from_file(path)
    return TestClient(app)


def test_metrics_are_served_with_the_scrape_credential(client) -> None:
    response = client.get("/metrics", headers={"Authorization": f"Bearer {SECRET}"})
    assert response.status_code == 200
    assert "broker_requests_total" in response.text


@pytest.mark.parametrize(
    "authorization", [None, "Bearer wrong", f"Basic {SECRET}", f"Bearer {SECRET}x", "Bearer "]
)
def test_metrics_without_the_credential_are_refused(client, authorization) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["reason"] == "/metrics needs the scrape credential"
    assert "broker_requests_total" not in response.text


def test_without_a_configured_credential_metrics_are_not_served(broker) -> None:  # noqa: F811
    services, app = broker
    services.scrape = ScrapeCredential.from_file(None)
    response = TestClient(app).get("/metrics", headers={"Authorization": f"Bearer {SECRET}"})
    assert response.status_code == 403
    assert "MLSEC_BROKER_METRICS_CREDENTIAL_FILE" in response.json()["reason"]


def test_a_short_or_missing_credential_file_stops_the_start(tmp_path) -> None:
    short = tmp_path / "short"
    short.write_text("abc")
    with pytest.raises(ConfigurationError, match="at least 16"):
        ScrapeCredential.from_file(short)
    with pytest.raises(ConfigurationError, match="cannot read"):
        ScrapeCredential.from_file(tmp_path / "absent")


def test_the_credential_file_is_a_setting(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("MLSEC_BROKER_METRICS_CREDENTIAL_FILE", str(tmp_path / "scrape"))
    assert PlatformSettings().broker_metrics_credential_file == tmp_path / "scrape"
