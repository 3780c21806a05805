"""The policy engine: every dimension allowed and denied, and strict parsing of policy files."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import yaml

from broker_api.limits import Limits
from broker_api.policy.engine import POLICY_DIR, Decision, PolicyEngine, RowFilter
from broker_api.principal import REVEAL, Principal
from mlsec_platform.catalog.datasets import CATALOG
from mlsec_platform.catalog.governance import ColumnSpec, DatasetSpec, Mask, Purpose, Sensitivity
from mlsec_platform.settings import Zone

VERSION = "2026.11.1"
PUBLIC, INTERNAL, CONFIDENTIAL, RESTRICTED = Sensitivity


@pytest.fixture(scope="module")
def engine() -> PolicyEngine:
    return PolicyEngine.load()


def who(
    *groups: str,
    project: str = "olist-br",
    purpose: Purpose = Purpose.ANALYTICS,
    clearance: Sensitivity = CONFIDENTIAL,
    reveal: bool = False,
) -> Principal:
    return Principal(
        subject="someone",
        groups=groups,
        project=project,
        purpose=purpose,
        clearance=clearance,
        entitlements=frozenset({REVEAL}) if reveal else frozenset(),
    )


def denied(decision: Decision, status: int, *words: str) -> None:
    assert not decision.allowed
    assert decision.status == status
    assert decision.columns == () and not decision.masks and decision.revealed == ()
    for word in words:
        assert word in decision.reason


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
    denied(engine.decide(who("analysts"), "gold/dim_date", ["year", "year"]), 400, "'year'",
           "more than once")  # fmt: skip


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
# Columns: clearance, masks, probing


def test_columns_up_to_the_clearance_are_clear(engine: PolicyEngine) -> None:
    columns = ["customer_token", "customer_state", "first_purchase_at", "orders"]
    d = engine.decide(who("analysts", clearance=CONFIDENTIAL), "gold/dim_customer", columns)
    assert d.allowed and d.columns == tuple(columns) and not d.masks
    assert "catalog:sensitivity" not in d.policy_ids


def test_columns_above_the_clearance_are_masked(engine: PolicyEngine) -> None:
    columns = ["orders", "customer_token", "first_purchase_at"]
    d = engine.decide(who("analysts", clearance=INTERNAL), "gold/dim_customer", columns)
    assert d.allowed and d.columns == tuple(columns)
    assert dict(d.masks) == {
        "customer_token": Mask.KEYED_HASH,
        "first_purchase_at": Mask.TRUNCATE_DATE,
    }
    assert d.policy_ids[-1] == "catalog:sensitivity"
    with pytest.raises(TypeError):
        d.masks["orders"] = Mask.NULL  # type: ignore[index]


def test_role_cap_lowers_the_clearance(engine: PolicyEngine) -> None:
    """Data scientists are capped at internal: a restricted token does not lift the cap."""
    ds = who("data-science", purpose=Purpose.ML, clearance=RESTRICTED)
    d = engine.decide(ds, "features/customer_rfm", ["customer_token", "monetary", "frequency"])
    assert d.allowed
    assert dict(d.masks) == {"customer_token": Mask.KEYED_HASH, "monetary": Mask.ROUND}
    # The analyst cap (confidential) lets the same token see both.
    d = engine.decide(
        who("analysts", purpose=Purpose.ML, clearance=RESTRICTED),
        "features/customer_rfm",
        ["customer_token", "monetary"],
    )
    assert d.allowed and not d.masks
    # Restricted tokens of silver/customers: masked for a confidential cap, clear for fraud.
    support = who("support", purpose=Purpose.CUSTOMER_SUPPORT, clearance=RESTRICTED)
    d = engine.decide(support, "silver/customers", ["customer_id", "cpf_token"])
    assert dict(d.masks) == {"cpf_token": Mask.REDACT}
    fraud = who("fraud", purpose=Purpose.FRAUD, clearance=RESTRICTED)
    assert not engine.decide(fraud, "silver/customers", ["customer_id", "cpf_token"]).masks


def test_column_above_the_clearance_without_a_mask_is_denied(engine: PolicyEngine) -> None:
    d = engine.decide(who("analysts", clearance=PUBLIC), "gold/dim_product", ["product_id"])
    denied(d, 403, "'product_id'", "internal", "no mask")
    assert d.policy_ids[-1] == "catalog:sensitivity"


@pytest.mark.parametrize("where", ["filter_columns", "order_columns"])
def test_filtering_or_ordering_on_a_masked_column_is_denied(
    engine: PolicyEngine, where: str
) -> None:
    analyst = who("analysts", clearance=INTERNAL)
    kwargs = {where: ["first_purchase_at"]}
    d = engine.decide(analyst, "gold/dim_customer", ["orders", "first_purchase_at"], **kwargs)
    denied(d, 403, "'first_purchase_at'", "probing")
    # ... even when the column is not returned.
    d = engine.decide(analyst, "gold/dim_customer", ["orders"], **kwargs)
    denied(d, 403, "'first_purchase_at'", "probing")
    # Clear columns may be filtered and ordered on, returned or not.
    d = engine.decide(analyst, "gold/dim_customer", ["first_purchase_at"], **{where: ["orders"]})
    assert d.allowed and dict(d.masks) == {"first_purchase_at": Mask.TRUNCATE_DATE}


# ---------------------------------------------------------------------------------------------
# Reveal

REASON = "subject access request #4711"
CUSTOMERS = ["customer_id", "cpf_token", "email_token", "customer_state"]


def officer(**kwargs: Any) -> Principal:
    kwargs = {"purpose": Purpose.CUSTOMER_SUPPORT, "clearance": RESTRICTED, **kwargs}
    return who("privacy-office", **kwargs)


def test_reveal_with_entitlement_role_and_reason(engine: PolicyEngine) -> None:
    d = engine.decide(
        officer(reveal=True, project="olist-sp"),
        "silver/customers",
        CUSTOMERS,
        reveal_columns=["email_token", "cpf_token"],
        reveal_reason=REASON,
    )
    assert d.allowed, d.reason
    assert d.revealed == ("cpf_token", "email_token")  # request order
    assert not d.masks
    assert d.policy_ids[-1] == "reveal"
    assert d.row_filter == RowFilter("customer_state", ("SP",))


def test_reveal_without_the_entitlement_is_denied(engine: PolicyEngine) -> None:
    d = engine.decide(
        officer(), "silver/customers", CUSTOMERS, reveal_columns=["cpf_token"], reveal_reason=REASON
    )
    denied(d, 403, "'reveal' entitlement")


def test_reveal_needs_a_role_that_may_reveal(engine: PolicyEngine) -> None:
    fraud = who("fraud", purpose=Purpose.FRAUD, clearance=RESTRICTED, reveal=True)
    d = engine.decide(
        fraud, "silver/customers", CUSTOMERS, reveal_columns=["cpf_token"], reveal_reason=REASON
    )
    denied(d, 403, "may reveal", "silver/customers")
    assert d.policy_ids == ("role:fraud", "catalog:purposes", "project:olist-br", "reveal")


def test_reveal_needs_the_clearance_to_see_the_column(engine: PolicyEngine) -> None:
    d = engine.decide(
        officer(reveal=True, clearance=CONFIDENTIAL),
        "silver/customers",
        CUSTOMERS,
        reveal_columns=["cpf_token"],
        reveal_reason=REASON,
    )
    denied(d, 403, "'cpf_token'", "restricted")


@pytest.mark.parametrize("reason", [None, "", "short", "       padded      "])
def test_reveal_without_a_reason_is_400(engine: PolicyEngine, reason: str | None) -> None:
    d = engine.decide(
        officer(reveal=True),
        "silver/customers",
        CUSTOMERS,
        reveal_columns=["cpf_token"],
        reveal_reason=reason,
    )
    denied(d, 400, "reason")


@pytest.mark.parametrize(
    ("reveal", "words"),
    [
        (["customer_state"], ("'customer_state'", "not tokenized")),
        (["name_token"], ("'name_token'", "not requested")),
        (["cpf_token", "cpf_token"], ("more than once",)),
    ],
)
def test_reveal_of_bad_columns_is_400(
    engine: PolicyEngine, reveal: list[str], words: tuple[str, ...]
) -> None:
    d = engine.decide(
        officer(reveal=True),
        "silver/customers",
        CUSTOMERS,
        reveal_columns=reveal,
        reveal_reason=REASON,
    )
    denied(d, 400, *words)


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


def test_decide_is_fast(engine: PolicyEngine) -> None:
    """A regression guard far above the target (<= 50 us per decision)."""
    p = who("data-science", project="olist-sp", purpose=Purpose.ML, clearance=CONFIDENTIAL)
    columns = [c.name for c in CATALOG["features/customer_rfm"].columns]
    n = 2_000
    start = time.perf_counter()
    for _ in range(n):
        engine.decide(p, "features/customer_rfm", columns, filter_columns=["event_timestamp"])
    assert (time.perf_counter() - start) / n < 500e-6


# ---------------------------------------------------------------------------------------------
# Policy files: a test catalog and strict parsing


SCORES = DatasetSpec(
    Zone.GOLD,
    "scores",
    "risk",
    "A test dataset with a restricted column that has no mask.",
    (
        ColumnSpec("id", pa.string(), "Id.", nullable=False),
        ColumnSpec("region", pa.string(), "Row-security key."),
        ColumnSpec("score", pa.int32(), "Restricted, no mask.", sensitivity=RESTRICTED),
    ),
    key=("id",),
    purposes=frozenset({Purpose.FRAUD}),
    row_security_key="region",
)
TEST_CATALOG = {**CATALOG, SCORES.id: SCORES}


def packaged() -> dict[str, Any]:
    return yaml.safe_load((POLICY_DIR / f"{VERSION}.yaml").read_text())


def write(folder: Path, document: dict[str, Any] | str, name: str = VERSION) -> Path:
    path = folder / f"{name}.yaml"
    text = document if isinstance(document, str) else yaml.safe_dump(document, sort_keys=False)
    path.write_text(text)
    return path


def test_restricted_column_without_mask_and_domains(tmp_path: Path) -> None:
    doc = packaged()
    doc["roles"]["risk"] = {
        "groups": ["risk"],
        "datasets": ["gold/*"],
        "domains": ["risk"],
        "purposes": ["fraud_prevention"],
        "clearance_cap": "confidential",
    }
    engine = PolicyEngine.load(write(tmp_path, doc), catalog=TEST_CATALOG)
    risk = engine.roles[-1]
    assert risk.datasets == frozenset({"gold/scores"})  # the domain narrows gold/*
    p = who("risk", purpose=Purpose.FRAUD, clearance=RESTRICTED, project="olist-south")
    d = engine.decide(p, "gold/scores", ["id", "region"])
    assert d.allowed and d.row_filter == RowFilter("region", ("PR", "SC", "RS"))
    denied(engine.decide(p, "gold/scores", ["id", "score"]), 403, "'score'", "restricted")
    denied(engine.decide(p, "gold/fact_order_item", ["order_id"]), 403, "no role")


@pytest.mark.parametrize(
    ("mutate", "key"),
    [
        (lambda d: d.update(owner="me"), "owner"),
        (lambda d: d.pop("roles"), "roles"),
        (lambda d: d.update(version="2026.11"), "version"),
        (lambda d: d.update(version="2026.12.1"), "version"),
        (lambda d: d.update(roles={}), "roles"),
        (lambda d: d["roles"]["analyst"].update(grants=["x"]), "roles.analyst.grants"),
        (lambda d: d["roles"]["analyst"].pop("groups"), "roles.analyst.groups"),
        (lambda d: d["roles"]["analyst"].update(groups=[]), "roles.analyst.groups"),
        (lambda d: d["roles"]["analyst"].update(groups="analysts"), "roles.analyst.groups"),
        (lambda d: d["roles"]["analyst"]["purposes"].append("spying"), "roles.analyst.purposes[4]"),
        (lambda d: d["roles"]["analyst"].update(clearance_cap="secret"), "clearance_cap"),
        (lambda d: d["roles"]["analyst"].update(reveal="yes"), "roles.analyst.reveal"),
        (lambda d: d["roles"]["analyst"]["datasets"].append("raw/*"), "datasets[2]"),
        (lambda d: d["roles"]["analyst"]["datasets"].append("*/*"), "datasets[2]"),
        (lambda d: d["roles"]["analyst"]["datasets"].append("gold"), "datasets[2]"),
        (lambda d: d["roles"]["analyst"]["datasets"].append("gold/[a-z]*"), "datasets[2]"),
        (lambda d: d["roles"]["analyst"]["datasets"].append("gold/nothing*"), "datasets[2]"),
        (lambda d: d["roles"]["analyst"].update(domains=["secrets"]), "domains[0]"),
        (lambda d: d["roles"]["analyst"].update(domains=["payments"]), "analyst.domains"),
        (lambda d: d["roles"]["analyst"].update(limits={"rows": 5}), "analyst.limits.rows"),
        (lambda d: d["roles"]["analyst"].update(limits={"burst": 0}), "analyst.limits.burst"),
        (lambda d: d["roles"]["analyst"].update(limits={"burst": True}), "limits.burst"),
        (lambda d: d["roles"]["analyst"].update(limits={"burst": 2.5}), "limits.burst"),
        (lambda d: d["roles"]["analyst"].update(limits={"max_rows_per_page": 10**6}), "page"),
        (lambda d: d["roles"].update({"Analyst-2": d["roles"]["analyst"]}), "roles.Analyst-2"),
        (lambda d: d["defaults"]["limits"].update(timeout_seconds="10"), "defaults.limits"),
        (lambda d: d["defaults"].update(purposes=[]), "defaults.purposes"),
        (lambda d: d["projects"]["olist-sp"].update(scope=[]), "projects.olist-sp.scope"),
        (lambda d: d["projects"]["olist-sp"].update(scope="SP"), "projects.olist-sp.scope"),
        (lambda d: d["projects"]["olist-sp"].update(scope=["SP", 7]), "olist-sp.scope[1]"),
        (lambda d: d["projects"]["olist-sp"].update(rows="*"), "projects.olist-sp.rows"),
        (lambda d: d["projects"].update({"Olist BR": {"scope": "*"}}), "projects.Olist BR"),
    ],
)
def test_strict_parsing_names_file_and_key(tmp_path: Path, mutate: Any, key: str) -> None:
    doc = packaged()
    mutate(doc)
    path = write(tmp_path, doc)
    with pytest.raises(ValueError, match=r"policy file .*2026\.11\.1\.yaml") as error:
        PolicyEngine.load(path)
    assert key in str(error.value)


def test_duplicate_yaml_keys_are_refused(tmp_path: Path) -> None:
    text = (POLICY_DIR / f"{VERSION}.yaml").read_text()
    text = text.replace("  olist-sp:\n", "  olist-br:\n    scope: '*'\n  olist-sp:\n", 1)
    with pytest.raises(ValueError, match="duplicate key 'olist-br'"):
        PolicyEngine.load(write(tmp_path, text))


@pytest.mark.parametrize("text", ["", "- a list\n", "version: [unclosed\n"])
def test_documents_that_are_not_policies_are_refused(tmp_path: Path, text: str) -> None:
    with pytest.raises(ValueError, match="policy file"):
        PolicyEngine.load(write(tmp_path, text))


def test_folder_loads_the_highest_version(tmp_path: Path) -> None:
    for version in ("2026.9.3", "2026.11.1", "2026.10.12"):
        doc = packaged()
        doc["version"] = version
        write(tmp_path, doc, version)
    (tmp_path / "README.md").write_text("not a policy")
    assert PolicyEngine.load(tmp_path).version == "2026.11.1"
    write(tmp_path, packaged(), "latest")
    with pytest.raises(ValueError, match="latest.yaml"):
        PolicyEngine.load(tmp_path)


def test_empty_or_missing_policy_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no policy file"):
        PolicyEngine.load(tmp_path)
    with pytest.raises(ValueError, match="cannot be read"):
        PolicyEngine.load(tmp_path / "2026.1.1.yaml")
