"""Moving data on a running stack without the daemon: pending batches into Raw, then curation.

`mlsec ingest` does what the connectors' sensors do on their timer (each landing upload and each
event batch waiting in NATS becomes one Raw run); `mlsec curate` runs the `curated` job (Raw ->
Silver -> Gold -> warehouse -> features, every table behind its gate). Both run against the
stack's Dagster instance, so their runs show in the UI like any other: in this process when
identities share one OS user, else in a child process of the connector's or the pipeline's OS
user (``stack/os_users.py``), which alone reads that identity's credentials.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import dagster as dg

from mlsec_platform.ops.drain import BatchRun
from mlsec_platform.ops.refusals import ActionFailed
from mlsec_platform.settings import PlatformSettings, get_settings
from mlsec_platform.stack.orchestrator import apply_environment, orchestrator_environment
from mlsec_platform.stack.os_users import popen_options, separated

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
    """Every landing upload and event batch waiting now, into Raw (one run per batch), as the
    connector's OS user when identities have their own (``in_child``)."""
    if separated(settings):
        return [BatchRun(**run) for run in in_child(settings, "connector", ["ingest"], echo)]
    return _ingest(settings, echo)


def curate(
    settings: PlatformSettings, echo: Echo, trigger: str = "cli", *, full: bool = False
) -> CurateResult:
    """Run the `curated` job: Raw -> Silver -> Gold -> warehouse and feature groups (gated),
    as the pipeline's OS user when identities have their own (``in_child``); ``full``: every
    table rebuilt from all of Raw instead of merging what Raw gained."""
    if separated(settings):
        task = ["curate", trigger, *(["--full"] if full else [])]
        return CurateResult(**in_child(settings, "pipeline", task, echo))
    return _curate(settings, echo, trigger, full)


def in_child(settings: PlatformSettings, identity: str, task: list[str], echo: Echo) -> Any:
    """Run ``task`` of this module in a process of ``identity``'s OS user (``stack/os_users.py``)
    and return its result; its progress lines are echoed as they come.

    The runs execute in that process (as in this one when identities share a user): its
    run ids, materializations and gates come back as the last line it prints."""
    # Names the instance here too (and fails here, in one line, when no stack runs).
    apply_environment(orchestrator_environment(settings))
    command = [sys.executable, "-m", __name__, *task]
    options = popen_options(settings, identity, {**os.environ, "PYTHONUNBUFFERED": "1"})
    result = None
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True, **options) as child:
        assert child.stdout is not None
        for line in child.stdout:
            if line.startswith(RESULT):
                result = json.loads(line[len(RESULT) :])
            else:
                echo(line.rstrip("\n"))
    if child.returncode != 0 or result is None:
        raise ActionFailed(
            f"the {task[0]} runs as the {identity} identity ended with exit code "
            f"{child.returncode} (their errors are above)"
        )
    return result


#: Marks the line that carries a child's result (``in_child``).
RESULT = "\x1emlsec-result "


def _ingest(settings: PlatformSettings, echo: Echo) -> list[BatchRun]:
    from mlsec_platform.defs.resources import build_resources
    from mlsec_platform.ops.drain import drain_events, drain_landing

    with _instance(settings) as instance:
        resources = build_resources(settings, identities=["connector"])
        runs = drain_landing(instance, resources, echo) + drain_events(instance, resources, echo)
    if not runs:
        echo("  nothing waiting in landing or in the event stream")
    return runs


def _curate(
    settings: PlatformSettings, echo: Echo, trigger: str, full: bool = False
) -> CurateResult:
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


def _main(task: str, *args: str) -> None:
    """A task of ``in_child``, in the child: its result as the last line, in JSON."""
    settings = get_settings()
    # The Dagster instance's local folders are shared with the other run workers' users.
    os.umask(0o007)
    if task == "ingest":
        result: Any = [asdict(run) for run in _ingest(settings, print)]
    else:
        trigger, *rest = args
        result = asdict(_curate(settings, print, trigger, full=rest == ["--full"]))
    print(RESULT + json.dumps(result, default=str), flush=True)


if __name__ == "__main__":
    _main(*sys.argv[1:])
