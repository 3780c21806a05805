"""Property-based: whatever a caller sends, the broker's request models, compiler and routes
refuse it with a 4xx or serve it; never an exception of another kind, never a 5xx.

Operands are drawn where server errors hide: integers past 64 and 128 bits, floats past the
double range and NaN, instants whose UTC time leaves the years 1-9999, text with NUL and lone
surrogates, decimals past a column's precision. Compiled queries run on DuckDB over the
dataset's empty table, so every bound parameter meets the real engine.
"""

from __future__ import annotations

import json
from datetime import UTC

import duckdb
import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from broker_api.compiler import QueryError, compile_query
from broker_api.cursor import query_fingerprint
from broker_api.limits import RateLimiter
from broker_api.models import HistoricalRequest, Op, QueryRequest, Text
from broker_api.responses import fingerprint
from mlsec_platform.catalog.datasets import CATALOG, FEATURE_GROUPS
from mlsec_platform_tests.broker_api.test_app import broker as broker  # noqa: F401 - fixture
from mlsec_platform_tests.broker_api.test_input_errors import (  # noqa: F401 - fixture
    confidential_analyst,
    post_escaped,
)

FACT = CATALOG["gold/fact_order_item"]
RFM = FEATURE_GROUPS["customer_rfm"]
PROPERTIES = settings(max_examples=300, deadline=None, database=None)

#: Any code point, with NUL and lone surrogates drawn often (they are rare among all).
any_text = st.text(
    st.one_of(
        st.characters(codec=None, exclude_categories=()), st.sampled_from("\x00\ud800\udfff")
    ),
    max_size=12,
)
#: Values at the edges of what the stores hold.
edges = st.sampled_from(
    [
        2**63 - 1,
        2**63,
        -(2**63) - 1,
        2**64,
        2**127,
        2**128,
        2**130,
        10**400,
        -(10**400),
        1e308,
        float("inf"),
        float("nan"),
        "9999-12-31T23:59:59-23:59",
        "0001-01-01T00:00:00+23:59",
        "9999-12-31",
        "\x00",
        "S\ud800",
        "1e400",
        "99999999999999999999.99",
        "NaN",
        "Infinity",
    ]
)
instants = st.builds(
    lambda moment, offset: moment.isoformat() + offset,
    st.datetimes(),
    st.sampled_from(["Z", "+00:00", "-23:59", "+23:59", "+05:30", ""]),
)
scalars = st.one_of(
    edges,
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(2**200), max_value=2**200),
    st.floats(),
    any_text,
    instants,
    st.dates().map(str),
    st.decimals().map(str),
    st.sampled_from(["9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+23:59", "1e400", "NaN"]),
)
operands = st.one_of(scalars, st.lists(scalars, max_size=3))
# Well-formed around the operands, so most examples reach the compiler and the engine (the
# schemathesis runs send malformed structure).
filters = st.fixed_dictionaries(
    {
        "column": st.sampled_from(FACT.column_names),
        "op": st.sampled_from([o.value for o in Op]),
        "value": operands,
    }
)
query_bodies = st.fixed_dictionaries(
    {
        "dataset": st.just(FACT.id),
        "columns": st.lists(st.sampled_from(FACT.column_names), min_size=1, max_size=4),
        "filters": st.lists(filters, min_size=1, max_size=3),
    },
    optional={
        "limit": st.integers(min_value=1, max_value=100),
        "version": st.one_of(
            st.none(), st.just(3), st.integers(min_value=-(2**70), max_value=2**70)
        ),
        "cursor": st.one_of(st.none(), any_text),
    },
)
entities = st.fixed_dictionaries(
    {"customer_token": any_text, "event_timestamp": st.one_of(instants, any_text, st.integers())}
)
historical_bodies = st.fixed_dictionaries(
    {
        "group": st.just("customer_rfm"),
        "features": st.lists(st.sampled_from(RFM.column_names), min_size=1, max_size=3),
        "entities": st.lists(entities, min_size=1, max_size=3),
    },
    optional={"version": st.one_of(st.just(3), st.integers(min_value=-(2**70), max_value=2**70))},
)


def _wire(body: dict) -> dict:
    """``body`` as the server parses it off the wire (JSON, surrogates escaped)."""
    return json.loads(json.dumps(body))


def _run_on_duckdb(spec, query) -> None:
    with duckdb.connect() as con:
        con.execute("SET TimeZone = 'UTC'")
        con.register("snapshot", spec.arrow_schema().empty_table())
        con.sql(query.sql, params=list(query.params)).to_arrow_table()


@given(body=query_bodies)
@PROPERTIES
def test_a_query_is_refused_by_the_model_or_the_compiler_or_runs(body) -> None:
    try:
        request = QueryRequest.model_validate(_wire(body))
    except ValidationError:
        return
    # What the request path records and signs of a valid request never fails.
    query_fingerprint(request)
    for f in request.filters:
        fingerprint(f.value)
    try:
        query = compile_query(
            FACT,
            request.columns,
            request.filters,
            request.order_by,
            relation="snapshot",
            row_filter=None,
            limit=request.limit,
        )
    except QueryError:
        return
    _run_on_duckdb(FACT, query)


@given(body=historical_bodies)
@PROPERTIES
def test_a_historical_request_is_refused_by_the_model_or_holds_arrow_values(body) -> None:
    try:
        request = HistoricalRequest.model_validate(_wire(body))
    except ValidationError:
        return
    # The point-in-time join's entity table takes every accepted value, as the route builds it.
    pa.array([e.customer_token for e in request.entities], pa.string())
    stamps = [e.event_timestamp.astimezone(UTC) for e in request.entities]
    pa.array(stamps, pa.timestamp("us", tz="UTC"))


@given(entity=any_text)
@PROPERTIES
def test_a_vector_entity_is_refused_or_storable_in_postgres_text(entity) -> None:
    try:
        TypeAdapter(Text).validate_python(entity)
    except ValidationError:
        assert "\x00" in entity or any(0xD800 <= ord(c) <= 0xDFFF for c in entity)
        return
    assert "\x00" not in entity
    entity.encode("utf-8")  # what psycopg2 sends to the online store


@given(body=st.one_of(query_bodies, historical_bodies), path=st.sampled_from(["q", "e", "h"]))
@settings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
def test_no_route_answers_any_body_with_a_server_error(broker, body, path) -> None:  # noqa: F811
    services, app = broker
    services.limiter = RateLimiter()  # the rate limit is not what this probes
    route = {"q": "/query", "e": "/explain", "h": "/feature/historical"}[path]
    response = post_escaped(app, route, body, "analyst_conf")
    assert response.status_code < 500, (route, body, response.text)
