"""Structured queries compile to parameterized SQL: values never reach the SQL text."""

from datetime import UTC, date, datetime
from decimal import Decimal

import duckdb
import pyarrow as pa
import pytest
from pydantic import ValidationError

from broker_api.compiler import QueryError, compile_query
from broker_api.cursor import CursorSigner, InvalidCursor, Page
from broker_api.models import Filter, OrderBy, QueryRequest
from broker_api.policy.decision import RowFilter
from mlsec_platform.catalog.datasets import CATALOG

FACT = CATALOG["gold/fact_order_item"]
INJECTIONS = [
    "x' OR '1'='1",
    "'; DROP TABLE snapshot; --",
    'x" OR 1=1 --',
    "SP') UNION SELECT * FROM duckdb_settings() --",
]


def _fact_rows() -> pa.Table:
    rows = {
        "order_id": ["o1", "o2", "o3", "x' OR '1'='1"],
        "order_item_id": [1, 1, 2, 1],
        "customer_state": ["SP", "RJ", "SP", "SP"],
        "price": [Decimal("10.00"), Decimal("20.50"), Decimal("5.25"), Decimal("1.00")],
    }
    return pa.table(rows)


def _run(query) -> list[dict]:
    con = duckdb.connect()
    con.register("snapshot", _fact_rows())
    return con.sql(query.sql, params=list(query.params)).to_arrow_table().to_pylist()


def _compile(*filters: Filter, order=(), row_filter=None, limit=10, offset=0):
    return compile_query(
        FACT,
        ["order_id", "price"],
        list(filters),
        list(order),
        relation="snapshot",
        row_filter=row_filter,
        limit=limit,
        offset=offset,
    )


@pytest.mark.parametrize("payload", INJECTIONS)
def test_injection_in_values_is_plain_data(payload: str) -> None:
    query = _compile(Filter(column="order_id", op="eq", value=payload))
    assert payload not in query.sql
    rows = _run(query)
    assert [r["order_id"] for r in rows] == ([payload] if payload == "x' OR '1'='1" else [])


@pytest.mark.parametrize("payload", INJECTIONS)
def test_injection_in_names_is_refused(payload: str) -> None:
    with pytest.raises(ValidationError):
        Filter(column=payload, op="eq", value="1")
    with pytest.raises(ValidationError):
        OrderBy(column=payload)
    with pytest.raises(ValidationError):
        QueryRequest(dataset=payload, columns=["order_id"])
    with pytest.raises(ValidationError):
        QueryRequest(dataset="gold/fact_order_item", columns=[payload])


def test_names_outside_the_catalog_are_refused() -> None:
    with pytest.raises(QueryError, match="no column"):
        _compile(Filter(column="pg_catalog", op="eq", value="1"))
    with pytest.raises(QueryError, match="no column"):
        _compile(order=[OrderBy(column="rowid")])


def test_values_are_typed_by_the_catalog() -> None:
    with pytest.raises(QueryError, match="price"):
        _compile(Filter(column="price", op="gt", value="1; DROP"))
    with pytest.raises(QueryError, match="order_item_id"):
        _compile(Filter(column="order_item_id", op="eq", value="1"))
    with pytest.raises(QueryError, match="time zone"):
        _compile(Filter(column="purchased_at", op="gt", value="2018-01-01T00:00:00"))
    query = _compile(
        Filter(column="price", op="between", value=["5", 11]),
        Filter(column="date_key", op="lt", value="2030-01-01"),
        Filter(column="purchased_at", op="gte", value="2017-01-01T00:00:00Z"),
    )
    assert Decimal("5") in query.params and date(2030, 1, 1) in query.params
    assert datetime(2017, 1, 1, tzinfo=UTC) in query.params


def test_row_scope_filters_and_order() -> None:
    scoped = _compile(
        Filter(column="price", op="gte", value=5),
        order=[OrderBy(column="price", direction="desc")],
        row_filter=RowFilter("customer_state", ("SP",)),
    )
    assert [r["price"] for r in _run(scoped)] == [Decimal("10.00"), Decimal("5.25")]
    nothing = _compile(row_filter=RowFilter("customer_state", ()))
    assert _run(nothing) == []
    prefix = _compile(
        Filter(column="order_id", op="prefix", value="o"),
        Filter(column="price", op="in", value=[10, "20.5"]),
    )
    assert sorted(r["order_id"] for r in _run(prefix)) == ["o1", "o2"]
    null = _compile(Filter(column="order_id", op="is_null", value=True))
    assert _run(null) == []


def test_pages_partition_the_result() -> None:
    pages = [_run(_compile(limit=2, offset=o)) for o in (0, 2, 4)]
    ids = [r["order_id"] for page in pages for r in page]
    assert sorted(ids) == sorted(_fact_rows()["order_id"].to_pylist())


def test_cursors_are_bound_to_query_subject_and_key() -> None:
    signer = CursorSigner(b"k" * 32)
    request = QueryRequest(dataset="gold/fact_order_item", columns=["order_id"], limit=2)
    cursor = signer.issue(request, "alice", Page(version=7, offset=2))
    assert signer.open(cursor, request, "alice") == Page(version=7, offset=2)
    with pytest.raises(InvalidCursor, match="another subject"):
        signer.open(cursor, request, "mallory")
    other = request.model_copy(update={"columns": ["order_id", "price"]})
    with pytest.raises(InvalidCursor, match="different query"):
        signer.open(cursor, other, "alice")
    payload, _, signature = cursor.partition(".")
    forged = payload[:-2] + ("AA" if payload[-2:] != "AA" else "BB") + "." + signature
    with pytest.raises(InvalidCursor):
        signer.open(forged, request, "alice")
    with pytest.raises(InvalidCursor, match="signature"):
        CursorSigner(b"z" * 32).open(cursor, request, "alice")
