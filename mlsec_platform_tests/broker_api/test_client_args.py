"""The SDK's pure helpers: argument normalisation, retry waits, problems, frames (no network)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from email.utils import format_datetime

import httpx
import numpy as np
import pandas as pd
import pytest

from broker_api.client import (
    AccessDenied,
    BrokerClient,
    BrokerError,
    BrokerUnavailable,
    RateLimited,
    entity_rows,
    normalize_filter,
    normalize_order,
    query_body,
    retry_delay,
    to_frame,
)
from broker_api.models import QueryRequest


def test_filters_from_tuples_and_dicts() -> None:
    assert normalize_filter(("price", "gt", 10)) == {"column": "price", "op": "gt", "value": 10}
    assert normalize_filter(("customer_state", "in", ("SP", "RJ"))) == {
        "column": "customer_state",
        "op": "in",
        "value": ["SP", "RJ"],
    }
    assert normalize_filter(("price", ">=", np.int64(3)))["op"] == "gte"
    assert normalize_filter(("price", ">=", np.int64(3)))["value"] == 3
    assert normalize_filter(("review", "is_null")) == {
        "column": "review",
        "op": "is_null",
        "value": True,
    }
    assert normalize_filter({"column": "d", "op": "eq", "value": date(2018, 1, 2)}) == {
        "column": "d",
        "op": "eq",
        "value": "2018-01-02",
    }
    assert normalize_filter(("price", "lt", Decimal("10.50")))["value"] == 10.5
    with pytest.raises(ValueError):
        normalize_filter(("price", "gt"))
    with pytest.raises(TypeError):
        normalize_filter("price > 10")


def test_order_by_forms() -> None:
    assert normalize_order("price") == {"column": "price", "direction": "asc"}
    assert normalize_order("-price") == {"column": "price", "direction": "desc"}
    assert normalize_order(("price", "DESC")) == {"column": "price", "direction": "desc"}
    assert normalize_order({"column": "price", "direction": "desc"}) == {
        "column": "price",
        "direction": "desc",
    }
    with pytest.raises(TypeError):
        normalize_order(3)  # type: ignore[arg-type]


def test_query_body_matches_the_wire_contract() -> None:
    body = query_body(
        "gold/orders",
        ("order_id", "price"),
        filters=[
            ("price", "gt", 10),
            ("customer_state", "in", ["SP", "RJ"]),
            ("purchased_at", "between", (datetime(2018, 1, 1, tzinfo=UTC), date(2018, 2, 1))),
        ],
        order_by="-price",
        limit=50,
        version=3,
        reveal={"columns": ["customer_token"], "reason": "fraud case 1234"},
    )
    req = QueryRequest.model_validate({**body, "cursor": None})
    assert req.limit == 50 and req.version == 3 and req.order_by[0].direction == "desc"
    assert [f.op for f in req.filters] == ["gt", "in", "between"]
    assert req.reveal is not None and req.reveal.columns == ["customer_token"]
    # A lone column name is one column, not its letters; empty options are left out.
    assert query_body("gold/orders", "price") == {
        "dataset": "gold/orders",
        "columns": ["price"],
        "limit": 100,
    }
    with pytest.raises(TypeError):
        query_body("gold/orders", ["price"], filters={"column": "price"})  # type: ignore[arg-type]


def test_retry_delay() -> None:
    assert retry_delay("3") == 3.0
    assert retry_delay("120") == 120.0  # whether to wait that long is the client's call
    assert retry_delay("-5") == 0.0
    now = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
    http_date = format_datetime(now + timedelta(seconds=7), usegmt=True)
    assert retry_delay(http_date, now=now) == 7.0
    assert retry_delay(None, jitter=lambda: 0.5) == 1.0
    assert retry_delay("soon", jitter=lambda: 0.0) == 0.5
    assert all(0.5 <= retry_delay(None) < 1.5 for _ in range(100))


def test_broker_error_from_problem_body() -> None:
    problem = {
        "status": 403,
        "reason": "purpose not allowed",
        "request_id": "r1",
        "decision_id": "d1",
    }
    err = BrokerError.from_response(httpx.Response(403, json=problem))
    assert (err.status, err.reason, err.request_id, err.decision_id) == (
        403,
        "purpose not allowed",
        "r1",
        "d1",
    )
    assert "purpose not allowed" in str(err) and isinstance(err, AccessDenied)
    bare = BrokerError.from_response(
        httpx.Response(502, text="Bad Gateway", headers={"X-Request-ID": "r2"})
    )
    assert (bare.status, bare.reason, bare.request_id, bare.decision_id) == (
        502,
        "Bad Gateway",
        "r2",
        None,
    )
    assert isinstance(bare, BrokerUnavailable)
    limited = BrokerError.from_response(httpx.Response(429, json=problem), 42.0)
    assert isinstance(limited, RateLimited) and limited.retry_after == 42.0


def test_to_frame_types_and_masks() -> None:
    columns = [
        {"name": "n", "type": "int64"},
        {"name": "at", "type": "timestamp[us, tz=UTC]"},
        {"name": "day", "type": "date32[day]"},
        {"name": "price", "type": "decimal128(12, 2)"},
        {"name": "ok", "type": "bool"},
        {"name": "x", "type": "double"},
        {"name": "zip", "type": "int32", "mask": "keyed_hash"},
    ]
    rows = [
        {
            "n": 1,
            "at": "2018-01-02T03:04:05Z",
            "day": "2018-01-02",
            "price": "12.30",
            "ok": True,
            "x": 1,
            "zip": "ab12",
        },
        {"n": None, "at": None, "day": None, "price": None, "ok": None, "x": None, "zip": None},
    ]
    df = to_frame(columns, rows)
    assert list(df.columns) == [c["name"] for c in columns]
    assert str(df["n"].dtype) == "Int64" and df["n"].isna().tolist() == [False, True]
    assert isinstance(df["at"].dtype, pd.DatetimeTZDtype)
    assert df["at"][0] == pd.Timestamp("2018-01-02T03:04:05Z")
    assert df["day"][0] == date(2018, 1, 2)
    assert df["price"][0] == Decimal("12.30")
    assert str(df["ok"].dtype) == "boolean" and df["x"].dtype == "float64"
    assert df["zip"][0] == "ab12"  # a hashed column stays text
    assert isinstance(df["price"].dtype, pd.ArrowDtype) and df["price"].sum() == Decimal("12.30")
    assert to_frame(columns, rows, "float")["price"].tolist()[0] == 12.3
    empty = to_frame(columns, [])
    assert list(empty.columns) == list(df.columns) and len(empty) == 0


def test_entity_rows() -> None:
    entities = pd.DataFrame(
        {
            "customer_token": ["t1", "t2"],
            "event_timestamp": [datetime(2018, 1, 1, tzinfo=UTC), "2018-02-01T00:00:00Z"],
        }
    )
    assert entity_rows(entities) == [
        {"customer_token": "t1", "event_timestamp": "2018-01-01T00:00:00+00:00"},
        {"customer_token": "t2", "event_timestamp": "2018-02-01T00:00:00+00:00"},
    ]
    with pytest.raises(ValueError):
        entity_rows(pd.DataFrame({"customer_token": ["t1"], "event_timestamp": [None]}))


def test_client_headers_and_arguments() -> None:
    tokens = iter(["one", "two"])
    with BrokerClient("http://broker.invalid", lambda: next(tokens), correlation_id="c") as b:
        assert b._headers("c") == {"Authorization": "Bearer one", "X-Correlation-ID": "c"}
        assert b._headers("c")["Authorization"] == "Bearer two"
        assert b._correlation() == "c"
    with BrokerClient("http://broker.invalid", "tok") as b:
        assert b._correlation() != b._correlation()
    with pytest.raises(ValueError):
        BrokerClient("http://broker.invalid", "tok", max_retries=-1)
