"""The code location: it loads with no server running, its graph changes only on purpose, and
its resources find the stack when a run starts (failing closed when there is none)."""

from __future__ import annotations

import difflib
import json
import os
from contextlib import closing
from pathlib import Path

import dagster as dg
import psycopg2
import pytest

from mlsec_platform.catalog.datasets import GOLD, SILVER
from mlsec_platform.definitions import defs
from mlsec_platform.defs.raw.files import landing_files_sensor
from mlsec_platform.defs.reference.assets import br_states
from mlsec_platform.errors import ConfigurationError
from mlsec_platform.resources.running_stack import StackAddressedResource

SNAPSHOT = Path(__file__).parent / "snapshots" / "asset_graph.json"
UPDATE_VARIABLE = "UPDATE_GRAPH_SNAPSHOT"
REGENERATE = (
    f"If the change is intended, regenerate the snapshot with\n"
    f"    {UPDATE_VARIABLE}=1 pytest mlsec_platform_tests/test_definitions.py\n"
    f"and commit {SNAPSHOT.relative_to(Path(__file__).parent.parent)} with the change."
)


@pytest.fixture
def no_stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Placeholder settings: a state folder where no stack ever ran (as on a fresh clone)."""
    for name in [n for n in os.environ if n.startswith("MLSEC_")]:
        monkeypatch.delenv(name)
    state = tmp_path / ".mlsec"
    monkeypatch.setenv("MLSEC_STATE_DIR", str(state))
    return state


@pytest.fixture
def definitions(no_stack: Path) -> dg.Definitions:
    return defs()


def graph_snapshot(definitions: dg.Definitions) -> dict:
    """What the graph is made of: assets with their deps and checks, jobs, sensors, schedules."""
    graph = definitions.resolve_asset_graph()

    def keys(selection: dg.AssetSelection) -> list[str]:
        return sorted(k.to_user_string() for k in selection.resolve(graph))

    assets = {}
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        assets[key.to_user_string()] = {
            "group": node.group_name,
            "deps": sorted(k.to_user_string() for k in node.parent_keys),
            "checks": sorted(c.name for c in node.check_keys),
        }
    jobs = {}
    for job in definitions.resolve_all_job_defs():
        if job.name.startswith("__"):  # Dagster's implicit jobs: they follow the assets
            continue
        selected = sorted(k.to_user_string() for k in job.asset_layer.executable_asset_keys)
        jobs[job.name] = {"assets": selected} if selected else {"ops": sorted(job.graph.node_dict)}

    def job_assets(names) -> list[str]:
        return sorted(
            k.to_user_string()
            for name in names
            for k in definitions.resolve_job_def(name).asset_layer.executable_asset_keys
        )

    sensors = {
        s.name: {
            "jobs": sorted(j.name for j in s.jobs) if s.has_jobs else [],
            "targets": keys(s.asset_selection)
            if s.asset_selection
            else (job_assets(j.name for j in s.jobs) if s.has_jobs else []),
            "default_status": s.default_status.value,
        }
        for s in definitions.sensors
    }
    schedules = {
        s.name: {
            "cron": s.cron_schedule,
            "timezone": s.execution_timezone,
            "targets": sorted(
                k.to_user_string()
                for k in definitions.resolve_job_def(s.job_name).asset_layer.executable_asset_keys
            ),
            "default_status": s.default_status.value,
        }
        for s in definitions.schedules
    }
    return {
        "assets": dict(sorted(assets.items())),
        "jobs": dict(sorted(jobs.items())),
        "sensors": dict(sorted(sensors.items())),
        "schedules": dict(sorted(schedules.items())),
    }


def _text(snapshot: dict) -> str:
    return json.dumps(snapshot, indent=2, sort_keys=True) + "\n"


def test_asset_graph_matches_its_snapshot(definitions):
    current = _text(graph_snapshot(definitions))
    if os.environ.get(UPDATE_VARIABLE) == "1":
        SNAPSHOT.parent.mkdir(exist_ok=True)
        SNAPSHOT.write_text(current)
    assert SNAPSHOT.exists(), f"no graph snapshot yet.\n{REGENERATE}"
    committed = SNAPSHOT.read_text()
    if current != committed:
        diff = "".join(
            difflib.unified_diff(
                committed.splitlines(keepends=True),
                current.splitlines(keepends=True),
                fromfile="committed snapshot",
                tofile="graph now",
            )
        )
        pytest.fail(f"the asset graph differs from its snapshot:\n{diff}\n{REGENERATE}")


def test_every_catalog_dataset_is_an_asset(definitions):
    keys = {k.to_user_string() for k in definitions.resolve_asset_graph().get_all_asset_keys()}
    assert set(SILVER) | set(GOLD) | {"features/customer_rfm"} <= keys


def test_every_asset_has_a_docstring_and_code_version(definitions):
    graph = definitions.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        assert node.description, f"{key.to_user_string()} needs a docstring (shown in the UI)"
        assert node.code_version, f"{key.to_user_string()} needs a code_version"


def test_loading_resolves_no_address(definitions, no_stack):
    """Every server address of the code location is left to the stack of the run."""
    assert not no_stack.exists()
    addressed = {
        key: resource
        for key, resource in definitions.resources.items()
        if isinstance(resource, StackAddressedResource)
    }
    assert {"vault_pipeline", "lake_connector", "nats_connector", "warehouse"} <= set(addressed)
    for key, resource in addressed.items():
        assert resource.unresolved_addresses() == list(resource.stack_addresses), key


def _configuration_errors(result: dg.ExecuteInJobResult) -> list[str]:
    failures = [e for e in result.all_events if e.is_failure]
    messages = []
    for event in failures:
        error = event.event_specific_data.error
        while error is not None:
            if error.cls_name == "ConfigurationError":
                messages.append(error.message)
            error = error.cause
    return messages


def test_a_run_without_a_stack_fails_closed_and_says_what_to_start(definitions, no_stack):
    result = dg.materialize([br_states], resources=definitions.resources, raise_on_error=False)
    assert not result.success
    messages = _configuration_errors(result)
    assert messages, [e.message for e in result.all_events if e.is_failure]
    assert all(
        "from the running stack" in m
        and f"no running local stack under {no_stack}" in m
        and "`mlsec up`" in m
        for m in messages
    ), messages
    assert not no_stack.exists()


def test_a_sensor_without_a_stack_fails_closed(definitions):
    context = dg.build_sensor_context(resources=definitions.resources)
    with pytest.raises(dg.DagsterResourceFunctionError) as raised:
        landing_files_sensor(context)
    cause = raised.value.__cause__
    assert isinstance(cause, ConfigurationError) and "no running local stack" in str(cause)


def test_a_run_of_the_code_location_finds_the_running_stack(supervisor, settings, superuser_dsn):
    """The code location's own resources, addresses unset, against the session stack: the run
    materializes and every audit event of it is the pipeline identity's."""
    definitions = defs()
    assert definitions.resources["lake_pipeline"].unresolved_addresses() == ["endpoint_url"]
    result = dg.materialize([br_states], resources=definitions.resources)
    assert result.success
    [materialization] = result.asset_materializations_for_node("silver__br_states")
    assert materialization.metadata["dagster/row_count"].value == 27
    with closing(psycopg2.connect(**superuser_dsn)) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT DISTINCT actor, event_type FROM audit.events WHERE run_id = %s",
            (result.run_id,),
        )
        events = set(cur.fetchall())
    assert {("pipeline", "asset.materialized"), ("pipeline", "secret.read")} <= events
    assert {actor for actor, _ in events} == {"pipeline"}
