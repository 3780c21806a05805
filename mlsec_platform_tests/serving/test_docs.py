"""The API docs of both services work offline (every asset served by the service itself), and
their OpenAPI documents declare the bearer scheme; a document changes only by additions.

The apps run without servers here (the stand-in services of each app's own tests).
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi.openapi.utils import get_openapi
from fastapi.testclient import TestClient

from mlsec_platform.catalog.sources import EVENT_DOMAINS, FILE_SOURCES
from mlsec_platform.gateway.app import create_app as gateway_app
from mlsec_platform_tests.broker_api.test_app import broker as broker  # noqa: F401 - fixture
from mlsec_platform_tests.gateway.test_app import _Services


@pytest.fixture
def gateway() -> TestClient:
    return TestClient(gateway_app(_Services()))  # no lifespan: nothing connects


@pytest.fixture
def apps(broker, gateway):  # noqa: F811
    return {"broker": TestClient(broker[1]), "gateway": gateway}


@pytest.mark.parametrize("service", ["broker", "gateway"])
@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_the_docs_load_nothing_from_another_host(apps, service, page) -> None:
    client = apps[service]
    response = client.get(page)
    assert response.status_code == 200, response.text
    html = response.text
    referenced = re.findall(r'(?:src|href)="([^"]+)"', html) + re.findall(r"url: '([^']+)'", html)
    assert referenced, html
    assert not [url for url in referenced if "//" in url], referenced  # no other host
    assets = [url for url in referenced if url.startswith("/docs-assets/")]
    assert any(url.endswith(".js") for url in assets), referenced
    for url in assets:
        asset = client.get(url)
        assert asset.status_code == 200 and len(asset.content) > 1000, url


@pytest.mark.parametrize("service", ["broker", "gateway"])
def test_the_bearer_scheme_is_declared_and_required_outside_health(apps, service) -> None:
    spec = apps[service].get("/openapi.json").json()
    scheme = spec["components"]["securitySchemes"]["bearer"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    for path, operations in spec["paths"].items():
        for operation in operations.values():
            expected = [] if path == "/health" else [{"bearer": []}]
            assert operation.get("security", []) == expected, path


def test_the_gateway_document_describes_bodies_and_names(gateway) -> None:
    spec = gateway.get("/openapi.json").json()
    upload = spec["paths"]["/v1/files/{source}"]["put"]
    publish = spec["paths"]["/v1/events/{domain}"]["post"]
    assert list(upload["requestBody"]["content"]) == ["text/csv"]
    assert list(publish["requestBody"]["content"]) == ["application/json"]
    assert upload["requestBody"]["required"] and publish["requestBody"]["required"]
    [source] = upload["parameters"]
    [domain] = publish["parameters"]
    assert source["schema"]["enum"] == sorted(FILE_SOURCES)
    assert domain["schema"]["enum"] == sorted(EVENT_DOMAINS)
    # A name the gateway does not know is still answered by its door (kept, audited).
    refused = gateway.put("/v1/files/no_such_source", content=b"x")
    assert refused.status_code == 401 and refused.json()["quarantine_id"]


def _additions_only(before: Any, after: Any, where: str = "") -> list[str]:
    """Where ``after`` drops or changes something of ``before`` (additions are fine)."""
    if isinstance(before, dict) and isinstance(after, dict):
        return [
            problem
            for key, value in before.items()
            for problem in (
                _additions_only(value, after[key], f"{where}/{key}")
                if key in after
                else [f"{where}/{key} removed"]
            )
        ]
    if isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        return [
            problem
            for n, (old, new) in enumerate(zip(before, after, strict=True))
            for problem in _additions_only(old, new, f"{where}/{n}")
        ]
    return [] if before == after else [f"{where} changed"]


@pytest.mark.parametrize("service", ["broker", "gateway"])
def test_the_documents_change_only_by_additions(apps, service) -> None:
    app = apps[service].app
    plain = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes
    )
    served = apps[service].get("/openapi.json").json()
    assert _additions_only(plain, served) == []
