"""The feature routes under the caps of /query, on a broker with a tight policy (5 rows per
page, 1000 bytes, 12 rows a day): no more entities than rows per page, no answer above the
byte cap (refused whole: there is no cursor), every row charged to the project's quota."""

from __future__ import annotations

import httpx
import pytest

from mlsec_platform_tests.broker_api.conftest import bearer
from mlsec_platform_tests.broker_api.routes.test_features import _tokens
from mlsec_platform_tests.helpers import https_client


@pytest.fixture
def tight(tight_broker, client_tls) -> httpx.Client:
    with https_client(tight_broker.url, client_tls) as client:
        yield client


def test_feature_vector_is_under_the_policy_caps(http, tight, mint) -> None:
    entities = _tokens(http, mint, 6)
    token = mint("probe", project="probe-0")

    def vector(n: int, *features: str) -> httpx.Response:
        params = {"group": "customer_rfm", "entity": entities[:n], "feature": list(features)}
        return tight.get("/feature/vector", params=params, headers=bearer(token))

    too_many = vector(6)
    assert too_many.status_code == 400, too_many.text
    assert too_many.json()["reason"] == "entities 6 is above this policy's 5 rows per page"
    too_big = vector(5)  # every feature of five customers: well over 1000 bytes
    assert too_big.status_code == 413, too_big.text
    assert "byte cap" in too_big.json()["reason"]
    # Within the caps: three rows an answer, charged to the quota of 12 rows a day.
    served = [vector(3, "frequency") for _ in range(4)]
    assert [len(r.json()["vectors"]) for r in served] == [3, 3, 3, 3], served[0].text
    spent = vector(1, "frequency")
    assert spent.status_code == 429, spent.text
    assert spent.json()["reason"] == "project 'probe-0' has used its rows for today"
    assert int(spent.headers["Retry-After"]) >= 1


def test_historical_is_under_the_policy_caps(http, tight, mint) -> None:
    entities = _tokens(http, mint, 6)
    token = mint("probe", project="probe-1")

    def historical(n: int, *features: str) -> httpx.Response:
        body = {
            "group": "customer_rfm",
            "features": list(features),
            "entities": [
                {"customer_token": e, "event_timestamp": "2030-01-01T00:00:00Z"}
                for e in entities[:n]
            ],
        }
        return tight.post("/feature/historical", json=body, headers=bearer(token))

    everything = ["recency_days", "frequency", "monetary", "avg_review_score"]
    too_many = historical(6, "frequency")
    assert too_many.status_code == 400, too_many.text
    assert too_many.json()["reason"] == "entities 6 is above this policy's 5 rows per page"
    too_big = historical(5, *everything)
    assert too_big.status_code == 413, too_big.text
    assert "byte cap" in too_big.json()["reason"]
    served = [historical(2, "frequency") for _ in range(6)]
    assert [r.json()["row_count"] for r in served] == [2] * 6, served[0].text
    spent = historical(1, "frequency")
    assert spent.status_code == 429, spent.text
    assert spent.json()["reason"] == "project 'probe-1' has used its rows for today"
