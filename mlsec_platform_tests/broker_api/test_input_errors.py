"""Input that used to answer 500 is refused with 400 and a reason, on every route that takes it:
values the database or the clock cannot hold, text no store can hold (NUL, lone surrogates).

The app runs without servers here (test_app.py's stub services around the real policy and
DuckDB engine); routes/test_features.py sends the online store's case to the real broker.
"""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from broker_api.principal import Principal
from mlsec_platform.catalog.governance import Purpose, Sensitivity
from mlsec_platform_tests.broker_api import test_app
from mlsec_platform_tests.broker_api.test_app import PAGE, ask
from mlsec_platform_tests.broker_api.test_app import broker as broker  # noqa: F401 - fixture
from mlsec_platform_tests.helpers import PRESENTED, through_the_gate

OVERFLOWING_INSTANT = "9999-12-31T23:59:59-23:59"  # its UTC time is in the year 10000


def _filtered(column: str, op: str, value) -> dict:
    return {**PAGE, "filters": [{"column": column, "op": op, "value": value}]}


@pytest.fixture(autouse=True)
def confidential_analyst(monkeypatch):
    """An analyst cleared for confidential columns (the entity of a feature group)."""
    who = Principal(
        "cid",
        ("analysts",),
        "olist-br",
        Purpose.ANALYTICS,
        Sensitivity.CONFIDENTIAL,
        certificate=PRESENTED,
    )
    monkeypatch.setitem(test_app.PEOPLE, "analyst_conf", who)


def post_escaped(app, path: str, body: dict, who: str = "analyst") -> httpx.Response:
    """POST ``body`` as ASCII JSON (``\\ud800`` escaped, as an attacker sends it: httpx's own
    encoder would refuse a lone surrogate before sending)."""

    async def run():
        transport = httpx.ASGITransport(app=through_the_gate(app))
        async with httpx.AsyncClient(transport=transport, base_url="http://broker") as client:
            return await client.post(
                path,
                content=json.dumps(body),
                headers={"Authorization": f"Bearer {who}", "Content-Type": "application/json"},
            )

    return asyncio.run(run())


REFUSED = {
    "a timestamp whose UTC time overflows": (
        "/query",
        _filtered("purchased_at", "gte", OVERFLOWING_INSTANT),
        "purchased_at",
    ),
    "an overflowing timestamp in between": (
        "/explain",
        _filtered("purchased_at", "between", ["2017-01-01T00:00:00Z", OVERFLOWING_INSTANT]),
        "purchased_at",
    ),
    "an integer above 128 bits": ("/query", _filtered("order_item_id", "eq", 2**130), "64 bits"),
    "an integer above 64 bits in a list": (
        "/query",
        _filtered("delivery_delay_days", "in", [1, -(2**63) - 1]),
        "64 bits",
    ),
    "an integer above the column's 32 bits": (
        "/query",
        _filtered("order_item_id", "in", [1, 2**31]),
        "order_item_id",
    ),
    "an integer beyond the double range": (
        "/query",
        _filtered("review_score", "gt", 10**400),
        "64 bits",
    ),
    "a decimal over the column's precision": (
        "/query",
        _filtered("price", "lt", "1" + "0" * 20),
        "price",
    ),
    "a lone surrogate in a filter value": (
        "/query",
        _filtered("customer_state", "eq", "S\ud800"),
        "lone surrogate",
    ),
    "a NUL in a filter value": ("/query", _filtered("customer_state", "eq", "S\x00P"), "NUL"),
    "a NUL in a prefix": ("/explain", _filtered("order_id", "prefix", "\x00"), "NUL"),
    "a Delta version beyond 64 bits": ("/query", {**PAGE, "version": 2**64}, "version"),
    "an overflowing as-of time": (
        "/feature/historical",
        {
            "group": "customer_rfm",
            "features": ["recency_days"],
            "entities": [{"customer_token": "c1", "event_timestamp": OVERFLOWING_INSTANT}],
        },
        "event_timestamp",
    ),
    "a lone surrogate in an entity": (
        "/feature/historical",
        {
            "group": "customer_rfm",
            "features": ["recency_days"],
            "entities": [{"customer_token": "\udfff", "event_timestamp": "2018-01-01T00:00:00Z"}],
        },
        "customer_token",
    ),
}


@pytest.mark.parametrize("case", list(REFUSED), ids=list(REFUSED))
def test_input_the_stores_cannot_hold_is_a_400_with_a_reason(broker, case) -> None:  # noqa: F811
    path, body, named = REFUSED[case]
    services, app = broker
    response = post_escaped(app, path, body, "analyst_conf")
    assert response.status_code == 400, response.text
    assert named in response.json()["reason"]
    assert [e["status"] for e in services.sink.events] == [400]


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ("group=customer_rfm&entity=c%00", "NUL"),
        ("group=customer_rfm&entity=c1&feature=recency%00days", "feature"),
    ],
    ids=["NUL in an entity", "NUL in a feature name"],
)
def test_vector_lookups_refuse_text_no_store_can_hold(broker, query, named) -> None:  # noqa: F811
    _, app = broker
    (response,) = ask(app, ("GET", f"/feature/vector?{query}", "analyst_conf", None))
    assert response.status_code == 400, response.text
    assert named in response.json()["reason"]
