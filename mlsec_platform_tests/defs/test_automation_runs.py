"""The automation sensor's runs, as Dagster's daemon submits them: the sensor ticks in Dagster's
own asset daemon over the workspace's code locations (loaded in this process), and the runs it
submits land in the instance's queue, where they are read back."""

from __future__ import annotations

import os
import time
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.remote_origin import InProcessCodeLocationOrigin
from dagster._core.test_utils import create_test_daemon_workspace_context, freeze_time
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
from dagster._core.workspace.load_target import InProcessWorkspaceLoadTarget
from dagster._daemon.asset_daemon import AssetDaemon

from mlsec_platform.catalog.sources import EVENT_DOMAINS
from mlsec_platform.defs.automation import RUN_TAGS, SENSOR_INTERVAL_SECONDS
from mlsec_platform.defs.raw.events import partitions_for
from mlsec_platform.stack.orchestrator import project_root

RAW_EVENTS = dg.AssetKey(["raw", "events_order_status"])
#: Queued, never launched: no run coordinator daemon runs here, so the runs stay as submitted.
QUEUED = {"module": "dagster._core.run_coordinator", "class": "QueuedRunCoordinator"}


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    for name in [n for n in os.environ if n.startswith("MLSEC_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("MLSEC_STATE_DIR", str(tmp_path / ".mlsec"))
    origins = [
        InProcessCodeLocationOrigin(
            LoadableTargetOrigin(
                module_name=f"mlsec_platform.locations.{name}",
                working_directory=str(project_root()),
            ),
            location_name=name,
        )
        for name in ("ingestion", "curation")
    ]
    with (
        dg.instance_for_test(overrides={"run_coordinator": QUEUED}) as instance,
        create_test_daemon_workspace_context(
            InProcessWorkspaceLoadTarget(origins), instance
        ) as context,
    ):
        yield instance, context


def tick(context, at: float) -> None:
    """One loop of Dagster's asset daemon at time ``at``: every automation sensor due ticks."""
    daemon = AssetDaemon(
        settings=context.instance.get_auto_materialize_settings(), pre_sensor_interval_seconds=0
    )
    with freeze_time(at):
        daemon._run_iteration_impl(  # noqa: SLF001 - the daemon's loop body, as Dagster's tests drive it
            context, threadpool_executor=None, amp_tick_futures={}, debug_crash_flags={}
        )


def test_a_run_the_sensor_starts_carries_the_automation_tags(workspace):
    instance, context = workspace
    now = time.time()
    tick(context, now)  # the first tick only records where the sensor starts from
    assert instance.get_runs() == []
    partitions = partitions_for(EVENT_DOMAINS["order_status"])
    instance.add_dynamic_partitions(partitions.name, ["events-1"])
    instance.report_runless_asset_event(dg.AssetMaterialization(RAW_EVENTS, partition="events-1"))

    tick(context, now + 2 * SENSOR_INTERVAL_SECONDS)

    runs = instance.get_runs()
    assert runs, "the sensor submitted no run for a new Raw batch"
    assert any(dg.AssetKey(["silver", "order_events"]) in (r.asset_selection or ()) for r in runs)
    for run in runs:
        assert run.status == dg.DagsterRunStatus.QUEUED
        assert run.tags["dagster/sensor_name"] == "curated_automation"
        assert {k: run.tags.get(k) for k in RUN_TAGS} == RUN_TAGS
