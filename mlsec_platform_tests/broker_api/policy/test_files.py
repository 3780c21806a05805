"""Policy files: parsed strictly, anything unknown named by file and key."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import yaml

from broker_api.policy.decision import RowFilter
from broker_api.policy.files import POLICY_DIR, PolicyFileError, load_policy
from mlsec_platform.catalog.datasets import CATALOG
from mlsec_platform.catalog.governance import ColumnSpec, DatasetSpec, Purpose
from mlsec_platform.errors import ConfigurationError
from mlsec_platform.settings import Zone
from mlsec_platform_tests.broker_api.policy.conftest import RESTRICTED, VERSION, denied, who

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
    engine = load_policy(write(tmp_path, doc), catalog=TEST_CATALOG)
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
        (lambda d: d.update(version="2026.12.2"), "version"),
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
    with pytest.raises(ValueError, match=rf"policy file .*{re.escape(VERSION)}\.yaml") as error:
        load_policy(path)
    assert key in str(error.value)


def test_duplicate_yaml_keys_are_refused(tmp_path: Path) -> None:
    text = (POLICY_DIR / f"{VERSION}.yaml").read_text()
    text = text.replace("  olist-sp:\n", "  olist-br:\n    scope: '*'\n  olist-sp:\n", 1)
    with pytest.raises(ValueError, match="duplicate key 'olist-br'"):
        load_policy(write(tmp_path, text))


@pytest.mark.parametrize("text", ["", "- a list\n", "version: [unclosed\n"])
def test_documents_that_are_not_policies_are_refused(tmp_path: Path, text: str) -> None:
    with pytest.raises(ValueError, match="policy file"):
        load_policy(write(tmp_path, text))


def test_folder_loads_the_highest_version(tmp_path: Path) -> None:
    for version in ("2026.9.3", "2026.11.1", "2026.10.12"):
        doc = packaged()
        doc["version"] = version
        write(tmp_path, doc, version)
    (tmp_path / "README.md").write_text("not a policy")
    assert load_policy(tmp_path).version == "2026.11.1"
    write(tmp_path, packaged(), "latest")
    with pytest.raises(ValueError, match="latest.yaml"):
        load_policy(tmp_path)


def test_empty_or_missing_policy_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no policy file"):
        load_policy(tmp_path)
    with pytest.raises(ValueError, match="cannot be read"):
        load_policy(tmp_path / "2026.1.1.yaml")


def test_a_policy_file_error_is_a_configuration_error(tmp_path: Path) -> None:
    """The broker does not start on it; `mlsec` prints its one line, naming file and key."""
    with pytest.raises(ConfigurationError) as error:
        load_policy(tmp_path)
    assert isinstance(error.value, PolicyFileError) and isinstance(error.value, ValueError)
