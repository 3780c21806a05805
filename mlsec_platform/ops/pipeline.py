"""Moving data on a running stack without the daemon: pending batches into Raw, then curation.

`mlsec ingest` does what the connectors' sensors do on their timer (each landing upload and each
event batch waiting in NATS becomes one Raw run); `mlsec curate` runs the `curated` job (Raw ->
Silver -> Gold -> warehouse -> features, every table behind its gate). Both run in this process
against the stack's Dagster instance, so their runs show in the UI like any other.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import dagster as dg

from mlsec_platform.ops.drain import BatchRun
from mlsec_platform.settings import PlatformSettings
from mlsec_platform.stack.orchestrator import apply_environment, orchestrator_environment

Echo = Callable[[str], None]

#: Keep Dagster's own console output to warnings: the commands print their own progress.
QUIET_RUN_CONFIG = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


@dataclass
class CurateResult:
    run_id: str
    success: bool
    #: Asset key -> the metadata of its materialization in this run.
    materializations: dict[str, dict] = field(default_factory=dict)
    failed_gates: list[str] = field(default_factory=list)


def _instance(settings: PlatformSettings) -> dg.DagsterInstance:
    apply_environment(orchestrator_environment(settings))
    return dg.DagsterInstance.get()


def ingest_pending(settings: PlatformSettings, echo: Echo) -> list[BatchRun]:
    """Every landing upload and event batch waiting now, into Raw (one run per batch)."""
    from mlsec_platform.defs.resources import build_resources
    from mlsec_platform.ops.drain import drain_events, drain_landing

    with _instance(settings) as instance:
        resources = build_resources(settings, identities=["connector"])
        runs = drain_landing(instance, resources, echo) + drain_events(instance, resources, echo)
    if not runs:
        echo("  nothing waiting in landing or in the event stream")
    return runs


def curate(
    settings: PlatformSettings, echo: Echo, trigger: str = "cli", *, full: bool = False
) -> CurateResult:
    """Run the `curated` job: Raw -> Silver -> Gold -> warehouse and feature groups (gated);
    ``full``: every table rebuilt from all of Raw instead of merging what Raw gained."""
    apply_environment(orchestrator_environment(settings))
    # Imported after the environment names the stack.
    from mlsec_platform.locations import location_definitions
    from mlsec_platform.storage.incremental import FULL_REBUILD_TAG

    started = time.monotonic()
    with dg.DagsterInstance.get() as instance:
        result = (
            location_definitions("curation")
            .resolve_job_def("curated")
            .execute_in_process(
                instance=instance,
                run_config=QUIET_RUN_CONFIG,
                tags={"mlsec/trigger": trigger, **({FULL_REBUILD_TAG: "true"} if full else {})},
                raise_on_error=False,
            )
        )
    outcome = CurateResult(run_id=result.run_id, success=result.success)
    for event in result.get_asset_materialization_events():
        mat = event.event_specific_data.materialization
        meta = {k: v.value for k, v in mat.metadata.items()}
        key = mat.asset_key.to_user_string()
        outcome.materializations[key] = meta
        where = meta.get("table_uri") or meta.get("table", "")
        echo(
            f"  {key:<34} delta v{meta.get('delta_version')}  "
            f"{meta.get('dagster/row_count')} rows  {where}"
        )
    for check in result.get_asset_check_evaluations():
        if not check.passed:
            outcome.failed_gates.append(check.asset_key.to_user_string())
            echo(f"  gate FAILED: {check.asset_key.to_user_string()} {check.check_name}")
    state = "succeeded" if result.success else "FAILED"
    echo(f"  run {result.run_id[:8]} {state} in {time.monotonic() - started:.1f}s")
    return outcome
