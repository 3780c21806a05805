"""A gate's rule families on small batches: each failing rule counts against its own family,
with its failing rows and sample rows (key and failing columns, personal data masked); the
families that did not fail pass; every gated dataset has the five checks."""

from __future__ import annotations

import pandera.errors
import pyarrow as pa
import pytest

from mlsec_platform.catalog.datasets import CATALOG, dataset
from mlsec_platform.quality.families import (
    FAMILIES,
    MASKED,
    check_specs,
    family_of,
    results,
    rules_by_family,
)
from mlsec_platform.quality.gates import relevant_cases
from mlsec_platform.quality.schemas import schema_for, validation_frame
from mlsec_platform_tests.quality.test_schemas import _sellers


def _evaluate(spec, table, **params):
    schema = schema_for(spec, **params)
    rules = rules_by_family(schema)
    try:
        schema.validate(validation_frame(table), lazy=True)
    except pandera.errors.SchemaErrors as exc:
        return {
            r.check_name: r
            for r in results(spec, table, relevant_cases(exc.failure_cases, spec.key), rules)
        }
    return {r.check_name: r for r in results(spec, table, None, rules)}


def test_each_failing_rule_counts_against_its_own_family() -> None:
    spec = dataset("silver/sellers")
    # s1 twice (keys), s3 in no state (domains), s4 without its state (types: not nullable).
    table = _sellers(["s1", "s1", "s3", "s4"], ["SP", "SP", "XX", None])
    checks = _evaluate(spec, table)
    assert set(checks) == set(FAMILIES)
    failed = {name for name, r in checks.items() if not r.passed}
    assert failed == {"keys", "domains", "types"}
    keys, domains = checks["keys"].metadata, checks["domains"].metadata
    assert keys["failing_rows"].value == 2 and domains["failing_rows"].value == 1
    (failed_check,) = domains["failed_checks"].value
    assert failed_check.startswith("isin(") and "'SP'" in failed_check
    (row,) = domains["sample_rows"].value.records
    assert row.data == {"seller_id": "s3", "seller_state": "XX"}
    assert checks["types"].metadata["failed_checks"].value == ["not_nullable"]
    assert checks["types"].metadata["failing_rows"].value == 1
    assert checks["ranges"].passed and checks["ranges"].metadata["failing_rows"].value == 0
    assert checks["types"].metadata["rules"].value >= len(spec.columns)


def test_a_clear_value_where_a_token_belongs_is_a_domain_failure_shown_masked() -> None:
    spec = dataset("silver/customers")
    good = {c.name: None for c in spec.columns}
    rows = [
        {
            **good,
            "customer_id": "c1",
            "customer_token": "h:" + "0" * 32,
            "customer_state": "SP",
            "email_token": "maria@example.com",
            "_raw_batch_id": "b1",
        },
    ]
    table = pa.Table.from_pylist(rows, schema=spec.arrow_schema())
    checks = _evaluate(spec, table)
    domains = checks["domains"]
    assert not domains.passed
    (row,) = domains.metadata["sample_rows"].value.records
    assert row.data["email_token"] == MASKED
    assert "maria@example.com" not in str(domains.metadata)


def test_an_unknown_category_is_a_reference_failure() -> None:
    spec = dataset("silver/products")
    categories = pa.table({"category": ["beleza_saude"]})
    row = {c.name: None for c in spec.columns} | {
        "product_id": "p1",
        "category": "categoria_inexistente",
        "_raw_batch_id": "b1",
    }
    table = pa.Table.from_pylist([row], schema=spec.arrow_schema())
    checks = _evaluate(spec, table, product_categories=categories)
    assert {n for n, r in checks.items() if not r.passed} >= {"references"}
    assert checks["references"].metadata["failing_rows"].value == 1


@pytest.mark.parametrize(
    ("check", "family"),
    [
        ("not_nullable", "types"),
        ("column_in_schema", "types"),
        ("unique_key(order_id)", "keys"),
        ("isin(['a'])", "domains"),
        ("str_matches('^x$')", "domains"),
        ("references(product_categories)", "references"),
        ("greater_than_or_equal_to(0)", "ranges"),
        ("in_range(1, 5)", "ranges"),
        ("item_total_is_price_plus_freight", "ranges"),
    ],
)
def test_family_of(check, family) -> None:
    assert family_of(check) == family


def test_every_gated_dataset_has_one_blocking_check_per_family() -> None:
    for spec in CATALOG.values():
        specs = check_specs(spec)
        assert [s.name for s in specs] == list(FAMILIES) and all(s.blocking for s in specs)
