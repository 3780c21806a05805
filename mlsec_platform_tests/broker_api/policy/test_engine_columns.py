"""The policy engine on columns: clearance, masks, probing and reveal."""

from __future__ import annotations

from typing import Any

import pytest

from broker_api.policy.decision import ColumnMasks, RowFilter
from broker_api.policy.engine import PolicyEngine
from broker_api.principal import Principal
from mlsec_platform.catalog.governance import Mask, Purpose
from mlsec_platform_tests.broker_api.policy.conftest import (
    CONFIDENTIAL,
    INTERNAL,
    PUBLIC,
    RESTRICTED,
    denied,
    who,
)

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


def test_mask_and_row_filter_results_are_types_of_their_own(engine: PolicyEngine) -> None:
    columns = ["order_id", "customer_token", "price"]
    p = who("analysts", clearance=INTERNAL, project="olist-sp")
    d = engine.decide(p, "gold/fact_order_item", columns)
    assert isinstance(d.masks, ColumnMasks) and isinstance(d.row_filter, RowFilter)
    assert d.masks.audit() == [{"column": "customer_token", "mask": "keyed_hash"}]
    assert d.masks.of(["order_id", "price"]) == {} and not d.masks.of(["price"])
    assert dict(d.masks.of(["customer_token"])) == {"customer_token": Mask.KEYED_HASH}
    assert d.row_filter.audit() == {"column": "customer_state", "values": ["SP"]}
