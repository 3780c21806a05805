"""The policy engine: datasets, roles, purposes, project rows and limits, allowed and denied."""

from __future__ import annotations

from typing import Any

import pytest

from broker_api.limits import Limits
from broker_api.policy.decision import RowFilter
from broker_api.policy.engine import PolicyEngine
from mlsec_platform.catalog.datasets import CATALOG
from mlsec_platform.catalog.governance import Purpose
from mlsec_platform_tests.broker_api.policy.conftest import VERSION, denied, who

# ---------------------------------------------------------------------------------------------
# The packaged policy


def test_packaged_policy_loads_and_decisions_name_it(engine: PolicyEngine) -> None:
    assert engine.version == VERSION
    assert {r.name for r in engine.roles} == {
        "analyst",
        "data_scientist",
        "support",
        "fraud",
        "privacy_officer",
    }
    assert set(engine.projects) == {"olist-br", "olist-sp", "olist-south"}
    assert engine.default_limits == Limits()
    d = engine.decide(who("analysts"), "gold/kpi_delivery", ["year_month", "late_rate"])
    assert d.allowed and d.status == 200
    assert d.policy_version == VERSION
    assert d.policy_ids == ("role:analyst", "catalog:purposes", "project:olist-br")
    assert d.dataset == "gold/kpi_delivery"
    assert d.columns == ("year_month", "late_rate")
    assert d.row_filter is None and not d.masks and d.revealed == ()
    assert "analytics" in d.reason and "analyst" in d.reason


def test_every_decision_has_a_new_id(engine: PolicyEngine) -> None:
    ids = {engine.decide(who("analysts"), "gold/dim_date", ["year"]).id for _ in range(50)}
    ids |= {engine.decide(who(), "gold/dim_date", ["year"]).id for _ in range(50)}
    assert len(ids) == 100
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)


# ---------------------------------------------------------------------------------------------
# Catalog: datasets and columns


def test_unknown_dataset_is_404(engine: PolicyEngine) -> None:
    d = engine.decide(who("privacy-office"), "gold/nope", ["x"])
    denied(d, 404, "unknown dataset", "gold/nope")
    assert d.dataset is None and d.policy_ids == ("catalog:datasets",)
    assert d.policy_version == VERSION


def test_star_is_refused(engine: PolicyEngine) -> None:
    denied(engine.decide(who("analysts"), "gold/dim_date", ["*"]), 400, "'*'")
    d = engine.decide(who("analysts"), "gold/dim_date", ["year"], filter_columns=["*"])
    denied(d, 400, "'*'")


@pytest.mark.parametrize("where", ["columns", "filter_columns", "order_columns", "reveal_columns"])
def test_unknown_column_is_400_naming_it(engine: PolicyEngine, where: str) -> None:
    kwargs: dict[str, Any] = {"columns": ["year"], where: ["salary"]}
    if where == "reveal_columns":
        kwargs["reveal_reason"] = "a sufficient reason"
    d = engine.decide(who("analysts"), "gold/dim_date", **kwargs)
    denied(d, 400, "'salary'", "gold/dim_date")
    assert d.policy_ids == ("catalog:columns",)


def test_shape_errors_are_400(engine: PolicyEngine) -> None:
    denied(engine.decide(who("analysts"), "gold/dim_date", []), 400, "at least one column")
    denied(
        engine.decide(who("analysts"), "gold/dim_date", ["year", "year"]),
        400,
        "'year'",
        "more than once",
    )


def test_without_a_role_columns_cannot_be_probed(engine: PolicyEngine) -> None:
    for columns in (["salary"], ["year"]):
        d = engine.decide(who(), "gold/dim_date", columns)
        denied(d, 403, "no role")
        assert d.policy_ids == ("default-deny",)


def test_client_names_are_cut_short_in_reasons(engine: PolicyEngine) -> None:
    d = engine.decide(who("analysts"), "gold/dim_date", ["x" * 5000])
    assert d.status == 400 and len(d.reason) < 200


# ---------------------------------------------------------------------------------------------
# RBAC


@pytest.mark.parametrize("groups", [(), ("nobody",), ("ANALYSTS",), ("analyst",)])
def test_unknown_group_is_default_deny(engine: PolicyEngine, groups: tuple[str, ...]) -> None:
    d = engine.decide(who(*groups), "gold/dim_date", ["year"])
    denied(d, 403, "no role")
    assert d.policy_ids == ("default-deny",)
    assert d.limits == Limits()


@pytest.mark.parametrize(
    ("group", "purpose", "dataset"),
    [
        ("analysts", Purpose.ANALYTICS, "silver/orders"),
        ("data-science", Purpose.ML, "silver/customers"),
        ("data-science", Purpose.ML, "silver/products"),
        ("support", Purpose.CUSTOMER_SUPPORT, "gold/kpi_sales_monthly"),
        ("fraud", Purpose.FRAUD, "features/customer_rfm"),
    ],
)
def test_role_without_the_dataset_is_default_deny(
    engine: PolicyEngine, group: str, purpose: Purpose, dataset: str
) -> None:
    column = CATALOG[dataset].key[0]
    d = engine.decide(who(group, purpose=purpose), dataset, [column])
    denied(d, 403, dataset)
    assert d.policy_ids == ("default-deny",)


@pytest.mark.parametrize(
    ("group", "purpose", "dataset"),
    [
        ("analysts", Purpose.MARKETING, "gold/dim_product"),
        ("data-science", Purpose.ML, "silver/order_items"),
        ("support", Purpose.CUSTOMER_SUPPORT, "silver/customers"),
        ("fraud", Purpose.FRAUD, "silver/sellers"),
        ("privacy-office", Purpose.OPERATIONS, "features/customer_rfm"),
    ],
)
def test_role_grants_its_datasets(
    engine: PolicyEngine, group: str, purpose: Purpose, dataset: str
) -> None:
    column = CATALOG[dataset].key[0]
    d = engine.decide(who(group, purpose=purpose), dataset, [column])
    assert d.allowed, d.reason


# ---------------------------------------------------------------------------------------------
# ABAC: purpose


def test_purpose_not_granted_by_the_role_is_denied_naming_it(engine: PolicyEngine) -> None:
    d = engine.decide(
        who("analysts", purpose=Purpose.CUSTOMER_SUPPORT), "gold/dim_product", ["product_id"]
    )
    denied(d, 403, "'customer_support'", "gold/dim_product", "analyst")
    assert d.policy_ids == ("role:analyst",)


def test_purpose_the_catalog_does_not_allow_is_denied(engine: PolicyEngine) -> None:
    officer = who("privacy-office", purpose=Purpose.MARKETING)
    d = engine.decide(officer, "silver/order_payments", ["order_id"])
    denied(d, 403, "'marketing'", "catalog", "silver/order_payments")
    assert d.policy_ids == ("role:privacy_officer", "catalog:purposes")
    # The same role and purpose where the catalog allows it.
    assert engine.decide(officer, "silver/orders", ["order_id"]).allowed
    # Person-level Silver is for support and fraud only, whatever the role says.
    d = engine.decide(
        who("privacy-office", purpose=Purpose.ANALYTICS), "silver/customers", ["customer_id"]
    )
    denied(d, 403, "'analytics'", "catalog")


def test_grants_are_not_mixed_across_roles(engine: PolicyEngine) -> None:
    """Support may read silver/customers for support, analysts may analyse: not both at once."""
    both = who("analysts", "support", purpose=Purpose.ANALYTICS)
    d = engine.decide(both, "gold/dim_customer", ["customer_token"])
    assert d.allowed and d.policy_ids[0] == "role:analyst"
    d = engine.decide(both, "silver/orders", ["order_id"])
    denied(d, 403, "'analytics'", "support")
    assert d.policy_ids == ("role:support",)


# ---------------------------------------------------------------------------------------------
# ABAC: project rows


@pytest.mark.parametrize(
    ("project", "row_filter"),
    [
        ("olist-br", None),
        ("olist-sp", RowFilter("customer_state", ("SP",))),
        ("olist-south", RowFilter("customer_state", ("PR", "SC", "RS"))),
    ],
)
def test_project_scope_becomes_the_row_filter(
    engine: PolicyEngine, project: str, row_filter: RowFilter | None
) -> None:
    d = engine.decide(
        who("analysts", project=project), "gold/kpi_sales_monthly", ["year_month", "revenue"]
    )
    assert d.allowed
    assert d.row_filter == row_filter
    assert f"project:{project}" in d.policy_ids


def test_unknown_project_reads_no_row_secured_dataset(engine: PolicyEngine) -> None:
    d = engine.decide(who("analysts", project="olist-north"), "gold/kpi_delivery", ["late_rate"])
    denied(d, 403, "'olist-north'", "row-secured")
    assert d.policy_ids[-1] == "default-deny"
    # Datasets without a row-security key do not depend on the project.
    d = engine.decide(who("analysts", project="olist-north"), "gold/dim_product", ["product_id"])
    assert d.allowed and d.row_filter is None
    assert not any(i.startswith("project:") for i in d.policy_ids)


# ---------------------------------------------------------------------------------------------
# Limits


def test_limits_per_role_and_most_generous_of_several(engine: PolicyEngine) -> None:
    support = engine.limits_for(who("support"))
    assert support.max_rows_per_page == 100 and support.concurrency == 2
    assert engine.limits_for(who("nobody")) == Limits()
    both = engine.limits_for(who("support", "privacy-office"))
    assert both.max_rows_per_page == 500  # privacy office
    assert both.max_bytes == Limits().max_bytes  # privacy office (support is tighter)
    assert both.requests_per_minute == 120 and both.burst == 20  # support
    assert both.timeout_seconds == Limits().timeout_seconds
    # A decision carries the limits of the roles that granted it, not of all the caller's roles.
    d = engine.decide(
        who("support", "privacy-office", purpose=Purpose.CUSTOMER_SUPPORT),
        "silver/geolocation",
        ["zip_prefix"],
    )
    assert d.allowed and d.limits == engine.limits_for(who("privacy-office"))
    d = engine.decide(
        who("support", "privacy-office", purpose=Purpose.CUSTOMER_SUPPORT),
        "silver/orders",
        ["order_id"],
    )
    assert d.allowed and d.limits == both
    assert d.policy_ids[:2] == ("role:support", "role:privacy_officer")


def test_a_decision_carries_the_dataset_it_resolved(engine: PolicyEngine) -> None:
    """What serves the request reads the engine's own catalog entry, never a second lookup."""
    d = engine.decide(who("analysts"), "gold/kpi_delivery", ["year_month"])
    assert d.spec is engine.catalog["gold/kpi_delivery"]
    denied_by_role = engine.decide(who(), "gold/kpi_delivery", ["year_month"])
    assert denied_by_role.spec is engine.catalog["gold/kpi_delivery"]
    assert engine.decide(who("analysts"), "gold/nope", ["x"]).spec is None


def test_a_dataset_is_visible_when_its_key_may_be_read(engine: PolicyEngine) -> None:
    """What /catalog/datasets lists and /catalog/schema describes."""
    for dataset_id, spec in engine.catalog.items():
        for p in (who("analysts"), who("support", purpose=Purpose.CUSTOMER_SUPPORT)):
            d = engine.decide_dataset(p, dataset_id)
            assert d.allowed == engine.decide(p, dataset_id, list(spec.key)).allowed
            assert d.columns == (spec.key if d.allowed else ())
    denied(engine.decide_dataset(who("analysts"), "gold/nope"), 404, "unknown dataset")
