"""One code location per writer identity: each binds only its identity's resources, together
they serve the whole graph once, and workspace.yaml serves each in a process of its own."""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg
import pytest
import yaml

from mlsec_platform.definitions import defs
from mlsec_platform.locations import LOCATIONS, location_definitions
from mlsec_platform.resources.vault import VaultResource
from mlsec_platform.stack.orchestrator import project_root


@pytest.fixture(autouse=True)
def no_stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """As on a fresh clone: the locations load with no server running."""
    for name in [n for n in os.environ if n.startswith("MLSEC_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("MLSEC_STATE_DIR", str(tmp_path / ".mlsec"))


def _vault_identities(definitions: dg.Definitions) -> set[str]:
    """Every identity whose OpenBao login a resource of ``definitions`` holds, however deep."""
    found: set[str] = set()

    def visit(value) -> None:
        if isinstance(value, VaultResource):
            found.add(value.identity)
        if isinstance(value, dg.ConfigurableResource | dg.ConfigurableIOManager):
            for field in type(value).model_fields:
                visit(getattr(value, field))

    for resource in (definitions.resources or {}).values():
        visit(resource)
    return found


@pytest.mark.parametrize("name", sorted(LOCATIONS))
def test_a_location_holds_the_credentials_of_its_own_identity_only(name):
    location = LOCATIONS[name]
    assert _vault_identities(location_definitions(name)) == {location.identity}


@pytest.mark.parametrize("name", sorted(LOCATIONS))
def test_every_job_of_a_location_runs_on_its_resources_alone(name):
    """A job needing a resource its location lacks (another identity's) fails to resolve."""
    definitions = location_definitions(name)
    dg.Definitions.validate_loadable(definitions)
    jobs = [j for j in definitions.resolve_all_job_defs() if not j.name.startswith("__")]
    assert jobs, f"{name} serves no job"


def test_the_locations_serve_the_whole_graph_each_asset_once():
    served: dict[dg.AssetKey, str] = {}
    for name in LOCATIONS:
        graph = location_definitions(name).resolve_asset_graph()
        for key in graph.get_all_asset_keys():
            if graph.get(key).is_materializable or graph.get(key).is_observable:
                assert key not in served, f"{key} in {served[key]} and {name}"
                served[key] = name
    whole = defs().resolve_asset_graph()
    executable = {k for k in whole.get_all_asset_keys() if whole.get(k).is_materializable}
    assert executable <= set(served)
    assert served[dg.AssetKey(["raw", "olist_orders"])] == "ingestion"
    assert served[dg.AssetKey(["silver", "orders"])] == "curation"


def test_the_workspace_serves_each_location_apart():
    workspace = yaml.safe_load((project_root() / "workspace.yaml").read_text())
    modules = {
        entry["python_module"]["location_name"]: entry["python_module"]["module_name"]
        for entry in workspace["load_from"]
    }
    assert modules == {name: f"mlsec_platform.locations.{name}" for name in LOCATIONS}


def test_every_defs_module_is_served_by_one_location():
    """A module under defs/ with a ``defs()`` that no location lists would silently vanish."""
    root = Path(__file__).resolve().parents[2] / "mlsec_platform" / "defs"
    declaring = {
        str(path.relative_to(root).with_suffix("")).replace("/", ".")
        for path in root.rglob("*.py")
        if "\ndef defs()" in path.read_text()
    }
    listed = [module for location in LOCATIONS.values() for module in location.modules]
    assert sorted(listed) == sorted(declaring)
