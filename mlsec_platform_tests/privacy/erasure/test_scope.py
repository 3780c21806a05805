"""Where a subject's data can be, as the catalog's tags say, and the predicates that find it."""

from __future__ import annotations

import duckdb
import pyarrow as pa

from mlsec_platform.catalog.datasets import CATALOG, CUSTOMERS
from mlsec_platform.catalog.governance import PiiKind
from mlsec_platform.catalog.sources import FILE_SOURCES
from mlsec_platform.privacy.erasure.scope import (
    REDACTED,
    ErasureScope,
    SubjectRecords,
    match_predicate,
    redaction,
    text_predicate,
)

SCOPE = ErasureScope()


def test_the_person_is_named_by_the_key_their_token_is_made_from():
    assert SCOPE.person_key == CUSTOMERS.person.from_column == "customer_unique_id"
    assert SCOPE.person_source == "olist_customers"
    assert set(SCOPE.identifiers) <= set(FILE_SOURCES["olist_customers"].column_names)


def test_every_curated_dataset_with_a_person_key_or_link_is_in_scope():
    linked = {
        spec.id
        for spec in CATALOG.values()
        if any(c.pii is PiiKind.LINKED or c.name == "customer_token" for c in spec.columns)
    }
    assert set(SCOPE.curated) == linked
    assert "gold/kpi_sales_monthly" not in SCOPE.curated  # aggregates name nobody
    assert SCOPE.curated["silver/order_reviews"].free_text == (
        "review_comment_title",
        "review_comment_message",
    )


def test_raw_tables_in_scope_are_those_with_a_key_column():
    assert set(SCOPE.raw_tables) == {
        "olist_customers", "olist_orders", "olist_order_items", "olist_order_payments",
        "olist_order_reviews", "events_order_status",
    }  # fmt: skip


def _sql(query: str, t: pa.Table) -> list[tuple]:
    """``query`` over ``t`` (DuckDB and DataFusion, which deletes, share this SQL subset)."""
    db = duckdb.connect()
    db.register("t", t)
    return db.sql(query).fetchall()


def test_a_match_predicate_finds_exactly_the_subjects_rows():
    t = pa.table(
        {
            "order_id": ["o1", "o2", "o3", "it's"],
            "customer_id": ["c1", "c9", "c2", "c3"],
        }
    )
    keys = {"order_id": {"o3", "it's"}, "customer_id": {"c1"}}
    rule = SCOPE.rule(t.column_names)
    predicate = match_predicate(rule, keys)
    found = _sql(f"SELECT order_id FROM t WHERE {predicate} ORDER BY 1", t)
    assert found == [("it's",), ("o1",), ("o3",)]
    assert match_predicate(rule, {"order_id": set()}) is None


def test_free_text_is_redacted_longest_needle_first():
    records = SubjectRecords(
        identifiers={"customer_email": {"ana@x.com"}, "customer_phone": {"11 9999-0000"}},
        tokens={"vault:v1:abc="},
    )
    needles = records.text_needles()
    assert [len(n) for n in needles] == sorted((len(n) for n in needles), reverse=True)
    text = "mail ana@x.com or vault:v1:abc= or 11 9999-0000 please"
    t = pa.table({"review_comment_message": [text, "nothing here", None]})
    hit = _sql(
        f"SELECT {redaction('review_comment_message', needles)} AS m FROM t "
        f"WHERE {text_predicate('review_comment_message', needles)}",
        t,
    )
    assert hit == [(f"mail {REDACTED} or {REDACTED} or {REDACTED} please",)]


def test_records_say_what_they_hold_without_values():
    records = SubjectRecords()
    assert not records.found
    assert records.add_keys("customer_id", ["c1", None, "c1"])
    assert not records.add_keys("customer_id", ["c1"])
    assert records.found and "c1" not in repr(records)
