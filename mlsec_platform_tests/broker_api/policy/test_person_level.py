"""Person-level datasets without a row-security key: a project's row scope cannot apply to
them, so a project-scoped principal reads them only where the policy grants it, with a reason
(issue 14)."""

from __future__ import annotations

from pathlib import Path

import pytest

from broker_api.policy.engine import PolicyEngine
from broker_api.policy.files import PolicyFileError, load_policy
from mlsec_platform.catalog.datasets import CATALOG
from mlsec_platform.catalog.governance import Purpose
from mlsec_platform_tests.broker_api.policy.conftest import denied, who
from mlsec_platform_tests.broker_api.policy.test_files import packaged, write

UNSCOPED = "silver/order_items"


def test_the_catalog_knows_which_datasets_are_person_level() -> None:
    unkeyed = {i for i, s in CATALOG.items() if s.person_level and s.row_security_key is None}
    # Orders and what hangs off an order are about the customer who placed it.
    assert unkeyed == {
        "silver/orders",
        "silver/order_items",
        "silver/order_payments",
        "silver/order_reviews",
        "silver/order_events",
    }
    assert CATALOG["silver/customers"].person_level
    assert CATALOG["gold/fact_order_item"].person_level
    for business in ("silver/products", "silver/sellers", "gold/dim_product", "gold/dim_date"):
        assert not CATALOG[business].person_level, business


@pytest.mark.parametrize("project", ["olist-sp", "olist-south", "olist-north"])
@pytest.mark.parametrize("dataset", sorted(
    i for i, s in CATALOG.items() if s.person_level and s.row_security_key is None
))  # fmt: skip
def test_a_project_scoped_principal_is_refused_person_level_rows_it_cannot_scope(
    engine: PolicyEngine, project: str, dataset: str
) -> None:
    spec = CATALOG[dataset]
    d = engine.decide(who("fraud", project=project, purpose=Purpose.FRAUD), dataset, spec.key)
    denied(d, 403, dataset, repr(project), "person-level", "unscoped")
    assert d.policy_ids[-1] == "catalog:person-level"


def test_a_project_reading_every_row_is_not_refused(engine: PolicyEngine) -> None:
    d = engine.decide(who("fraud", purpose=Purpose.FRAUD), UNSCOPED, ["order_id"])
    assert d.allowed and d.row_filter is None and "project:olist-br" in d.policy_ids


def test_datasets_that_are_not_person_level_do_not_depend_on_the_project(
    engine: PolicyEngine,
) -> None:
    for project in ("olist-sp", "olist-north"):
        d = engine.decide(
            who("fraud", project=project, purpose=Purpose.FRAUD), "silver/products", ["product_id"]
        )
        assert d.allowed and d.row_filter is None


def _granting(tmp_path: Path, grants: object) -> Path:
    doc = packaged()
    doc["projects"]["olist-sp"]["unscoped"] = grants
    return write(tmp_path, doc)


def test_an_explicit_grant_with_a_reason_lets_a_project_read_in_full(tmp_path: Path) -> None:
    reason = "Item-level pricing studies: items carry no state, prices are not personal."
    engine = load_policy(_granting(tmp_path, {UNSCOPED: reason}))
    sp = who("fraud", project="olist-sp", purpose=Purpose.FRAUD)
    d = engine.decide(sp, UNSCOPED, ["order_id", "price"])
    assert d.allowed and d.row_filter is None
    assert "project:olist-sp/unscoped" in d.policy_ids
    assert engine.projects["olist-sp"].unscoped == {UNSCOPED: reason}
    # The grant is that dataset's only.
    denied(engine.decide(sp, "silver/orders", ["order_id"]), 403, "silver/orders")


@pytest.mark.parametrize(
    ("grants", "words"),
    [
        ({UNSCOPED: None}, ("unscoped.silver/order_items", "reason")),
        ({UNSCOPED: "   "}, ("unscoped.silver/order_items", "reason")),
        ({UNSCOPED: "why"}, ("unscoped.silver/order_items", "reason")),
        ([UNSCOPED], ("unscoped", "mapping")),
        ({"silver/nothing": "a reason long enough"}, ("silver/nothing", "no catalog dataset")),
        (
            {"gold/fact_order_item": "a reason long enough"},
            ("gold/fact_order_item", "row-security key"),
        ),
        ({"silver/products": "a reason long enough"}, ("silver/products", "not person-level")),
    ],
)
def test_the_reader_refuses_a_grant_without_a_reason_or_a_target(
    tmp_path: Path, grants: object, words: tuple[str, ...]
) -> None:
    with pytest.raises(PolicyFileError) as caught:
        load_policy(_granting(tmp_path, grants))
    for word in words:
        assert word in str(caught.value)


@pytest.mark.parametrize("value", ["S,P", "SP;", " SP", "SP "])
def test_a_scope_value_the_warehouse_would_read_otherwise_is_refused(
    tmp_path: Path, value: str
) -> None:
    """The warehouse splits a signed scope on ',' (and the MAC off on ';'): a value holding
    either would mean something else there than in the broker's own row filter."""
    doc = packaged()
    doc["projects"]["olist-sp"]["scope"] = ["RJ", value]
    with pytest.raises(PolicyFileError) as caught:
        load_policy(write(tmp_path, doc))
    assert "projects.olist-sp.scope[1]" in str(caught.value)
