"""The inputs an attack run found answered with 500, sent to the real broker (DuckDB over the
lake's snapshots, the online store in Postgres): each is a 400 with a reason now; and any
entity text either reaches the online store or is refused, never a server error."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlsec_platform_tests.broker_api.conftest import FACT, bearer

OVERFLOWING_INSTANT = "9999-12-31T23:59:59-23:59"


def _post(http, token: str, path: str, body: dict):
    """``body`` as ASCII JSON: a lone surrogate goes out escaped, as an attacker sends it."""
    headers = {**bearer(token), "Content-Type": "application/json"}
    return http.post(path, content=json.dumps(body), headers=headers)


def _filtered(column: str, op: str, value) -> dict:
    return {
        "dataset": FACT,
        "columns": ["order_id", "price"],
        "filters": [{"column": column, "op": op, "value": value}],
    }


HISTORICAL = {"group": "customer_rfm", "features": ["recency_days"]}
REPORTED = {
    "overflowing instant in /query": (
        "/query",
        _filtered("purchased_at", "gte", OVERFLOWING_INSTANT),
        "purchased_at",
    ),
    "overflowing instant in /feature/historical": (
        "/feature/historical",
        {
            **HISTORICAL,
            "entities": [{"customer_token": "c", "event_timestamp": OVERFLOWING_INSTANT}],
        },
        "event_timestamp",
    ),
    "integer above 128 bits": ("/query", _filtered("order_item_id", "eq", 2**129), "64 bits"),
    "lone surrogate in a filter value": (
        "/query",
        _filtered("customer_state", "eq", "\ud800"),
        "lone surrogate",
    ),
}


@pytest.mark.parametrize("case", list(REPORTED), ids=list(REPORTED))
def test_the_reported_inputs_are_refused_with_a_reason(http, mint, case) -> None:
    path, body, named = REPORTED[case]
    response = _post(http, mint("analyst_conf"), path, body)
    assert response.status_code == 400, response.text
    assert named in response.json()["reason"]


def test_a_nul_in_a_vector_entity_is_refused_with_a_reason(http, mint) -> None:
    params = {"group": "customer_rfm", "entity": ["c\x00"]}
    response = http.get("/feature/vector", params=params, headers=bearer(mint("analyst_conf")))
    assert response.status_code == 400, response.text
    assert "NUL" in response.json()["reason"]


#: Entities as a caller may send them: any code point, NUL and lone surrogates often.
ENTITIES = st.text(
    st.one_of(
        st.characters(codec=None, exclude_categories=()), st.sampled_from("\x00\ud800\udfff")
    ),
    min_size=1,
    max_size=40,
)


@given(entity=ENTITIES)
@settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
def test_any_entity_text_reaches_the_online_store_or_is_refused(http, mint, entity) -> None:
    # Percent-encoded UTF-8 by hand: httpx would refuse to encode a lone surrogate.
    encoded = "".join(
        c if c.isalnum() and c.isascii() else "".join(f"%{b:02X}" for b in _wtf8(c)) for c in entity
    )
    response = http.get(
        f"/feature/vector?group=customer_rfm&entity={encoded}",
        headers=bearer(mint("analyst_conf")),
    )
    if "\x00" in entity:
        assert response.status_code == 400, (entity, response.text)
        return
    assert response.status_code == 200, (entity, response.text)
    # A lone surrogate arrives as invalid UTF-8, decoded with replacement characters.
    if not any(0xD800 <= ord(c) <= 0xDFFF for c in entity):
        assert response.json()["missing"] == [entity]


def _wtf8(c: str) -> bytes:
    """A character's UTF-8 bytes; a lone surrogate's as the (invalid) bytes an attacker sends."""
    return c.encode("utf-8", "surrogatepass")
