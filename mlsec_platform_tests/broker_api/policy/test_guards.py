"""Budgets and detection in policy files: read strictly, anything unknown named by file and key;
each request reads under at most one budget, its project's and purpose's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from broker_api.policy.files import load_policy
from broker_api.policy.guards import Action, Detector
from mlsec_platform.catalog.governance import Purpose
from mlsec_platform_tests.broker_api.policy.conftest import who
from mlsec_platform_tests.broker_api.policy.test_files import packaged, write


def test_the_packaged_policy_budgets_support_and_watches_every_detector() -> None:
    guards = load_policy().guards
    support = guards.budget_for(who("support", purpose=Purpose.CUSTOMER_SUPPORT))
    assert support is not None and support.name == "support-customers"
    assert support.subjects and support.rows and support.window_seconds == 86_400
    assert guards.budget_for(who("analysts")) is None
    assert set(guards.detection) == set(Detector)
    assert guards.detection[Detector.ENUMERATION].action is Action.SUSPEND


def test_a_budget_limited_to_projects_covers_only_them(tmp_path: Path) -> None:
    doc = packaged()
    doc["budgets"] = {
        "sp-analytics": {
            "purpose": "analytics",
            "projects": ["olist-sp"],
            "window_seconds": 60,
            "rows": 10,
        }
    }
    guards = load_policy(write(tmp_path, doc)).guards
    (budget,) = guards.budgets
    assert budget.subjects is None and budget.rows == 10
    assert guards.budget_for(who("analysts", project="olist-sp")) is budget
    assert guards.budget_for(who("analysts", project="olist-br")) is None
    assert guards.budget_for(who("analysts", project="olist-sp", purpose=Purpose.ML)) is None


BUDGET = {"purpose": "analytics", "window_seconds": 60, "subjects": 5}


@pytest.mark.parametrize(
    ("mutate", "key"),
    [
        (lambda d: d.update(budgets=["x"]), "budgets"),
        (lambda d: d.update(budgets={"Big One": BUDGET}), "budgets.Big One"),
        (lambda d: d.update(budgets={"b": {**BUDGET, "purpose": "spying"}}), "budgets.b.purpose"),
        (lambda d: d.update(budgets={"b": {**BUDGET, "subjects": 0}}), "budgets.b.subjects"),
        (lambda d: d.update(budgets={"b": {**BUDGET, "rows": True}}), "budgets.b.rows"),
        (lambda d: d.update(budgets={"b": {**BUDGET, "every": 1}}), "budgets.b.every"),
        (lambda d: d.update(budgets={"b": {**BUDGET, "projects": ["mars"]}}), "budgets.b.projects"),
        (
            lambda d: d.update(budgets={"b": {"purpose": "analytics", "window_seconds": 9}}),
            "budgets.b",
        ),
        (lambda d: d.update(budgets={"b": BUDGET, "c": BUDGET}), "budgets.c"),
        (lambda d: d["detection"].update(scraping={}), "detection.scraping"),
        (lambda d: d["detection"]["filter_probing"].update(action="ban"), "filter_probing.action"),
        (lambda d: d["detection"]["pagination_sweep"].update(threshold=-1), "sweep.threshold"),
        (lambda d: d["detection"]["entity_enumeration"].pop("window_seconds"), "window_seconds"),
    ],
)
def test_strict_parsing_names_the_key(tmp_path: Path, mutate: Any, key: str) -> None:
    doc = packaged()
    mutate(doc)
    with pytest.raises(ValueError, match="policy file") as error:
        load_policy(write(tmp_path, doc))
    assert key in str(error.value)
