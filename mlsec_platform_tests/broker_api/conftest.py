"""The real broker over HTTP, on the session's stack and its curated 100k-order data."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator

import httpx
import pytest

from broker_api.identity import issue_broker_token
from broker_api.server import BackgroundBroker
from mlsec_platform.stack.ports import PortAllocator
from mlsec_platform_tests.helpers import operator_vault

#: Who the tests are; each test gets its own subject so rate limits never leak between tests.
PEOPLE = {
    "analyst": dict(
        groups=["analysts"], project="olist-br", purpose="analytics", clearance="internal"
    ),
    "analyst_conf": dict(
        groups=["analysts"], project="olist-br", purpose="analytics", clearance="confidential"
    ),
    "analyst_sp": dict(
        groups=["analysts"], project="olist-sp", purpose="analytics", clearance="confidential"
    ),
    "support": dict(
        groups=["support"], project="olist-br", purpose="customer_support", clearance="confidential"
    ),
    "fraud": dict(
        groups=["fraud"], project="olist-br", purpose="fraud_prevention", clearance="restricted"
    ),
    "officer": dict(
        groups=["privacy-office"],
        project="olist-br",
        purpose="customer_support",
        clearance="restricted",
        entitlements=["reveal"],
    ),
    "stranger": dict(
        groups=["visitors"], project="olist-br", purpose="analytics", clearance="restricted"
    ),
}
_subjects = itertools.count()


@pytest.fixture(scope="session")
def broker(settings, endpoints, curated) -> Iterator[BackgroundBroker]:
    with BackgroundBroker(settings, PortAllocator().take()) as running:
        yield running


@pytest.fixture(scope="session")
def mint(settings, endpoints) -> Callable[..., str]:
    """``mint("analyst", purpose=...)``: a token for a fresh subject of that kind."""
    vault = operator_vault(settings, endpoints)

    def _mint(kind: str, **overrides) -> str:
        claims = {**PEOPLE[kind], **overrides}
        subject = claims.pop("subject", f"{kind}-{next(_subjects)}")
        return issue_broker_token(vault, subject=subject, ttl_seconds=600, **claims)

    return _mint


@pytest.fixture
def http(broker) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=broker.url, timeout=60) as client:
        yield client


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


FACT = "gold/fact_order_item"
DIM = "gold/dim_customer"


def post_query(http, token, **body):
    body.setdefault("dataset", FACT)
    body.setdefault("columns", ["order_id", "order_item_id", "price"])
    return http.post("/query", json=body, headers=bearer(token))


def ok(response) -> dict:
    assert response.status_code == 200, response.text
    return response.json()
