"""Where a subject's data can be, as the catalog's tags say, and the predicates that find it."""

from __future__ import annotations

from mlsec_platform.catalog.datasets import CATALOG, CUSTOMERS
from mlsec_platform.catalog.governance import PiiKind
from mlsec_platform.catalog.sources import FILE_SOURCES
from mlsec_platform.privacy.erasure.scope import ErasureScope, SubjectRecords

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


def test_text_needles_come_longest_first():
    records = SubjectRecords(
        identifiers={"customer_email": {"ana@x.com"}, "customer_phone": {"11 9999-0000"}},
        tokens={"vault:v1:abc="},
        keys={"order_id": {"o1-long-order-id"}},
    )
    needles = records.text_needles()
    assert [len(n) for n in needles] == sorted((len(n) for n in needles), reverse=True)
    assert "o1-long-order-id" not in needles  # keys are matched as keys, not quoted text
    assert "o1-long-order-id" in records.needles()


def test_records_say_what_they_hold_without_values():
    records = SubjectRecords()
    assert not records.found
    assert records.add_keys("customer_id", ["c1", None, "c1"])
    assert not records.add_keys("customer_id", ["c1"])
    assert records.found and "c1" not in repr(records)
