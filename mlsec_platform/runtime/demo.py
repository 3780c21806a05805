"""The main job on the embedded default: start the stack, bootstrap, materialize, verify."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import dagster as dg

from mlsec_platform.audit.chain import VerifyReport
from mlsec_platform.audit.verify import verify_audit_log
from mlsec_platform.runtime.bootstrap import bootstrap
from mlsec_platform.runtime.orchestrator import apply_environment, orchestrator_environment
from mlsec_platform.runtime.settings import PlatformSettings, Profile
from mlsec_platform.runtime.supervisor import Supervisor

Echo = Callable[[str], None]

#: Keep Dagster's own console output to warnings: the demo prints its own progress.
QUIET_RUN_CONFIG = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


@dataclass
class DemoResult:
    run_id: str
    success: bool
    materializations: dict[str, dict] = field(default_factory=dict)
    audit: VerifyReport | None = None


def bring_up(settings: PlatformSettings, echo: Echo) -> None:
    """Start (local) or check (stack) the servers, then bootstrap identities idempotently."""
    if settings.profile is Profile.LOCAL:
        echo("Starting the embedded stack")
        endpoints = Supervisor(settings, progress=echo).up()
    else:
        endpoints = settings.endpoints()
    echo("Bootstrapping identities and permissions")
    bootstrap(settings, endpoints, progress=echo)


def run_demo(settings: PlatformSettings, echo: Echo) -> DemoResult:
    bring_up(settings, echo)

    echo("Materializing the asset graph")
    apply_environment(orchestrator_environment(settings))
    from mlsec_platform.definitions import defs  # after the environment names the stack

    definitions = defs()
    job = definitions.resolve_implicit_global_asset_job_def()
    started = time.monotonic()
    with dg.DagsterInstance.get() as instance:
        result = job.execute_in_process(
            instance=instance,
            run_config=QUIET_RUN_CONFIG,
            tags={"mlsec/trigger": "demo"},
            raise_on_error=False,
        )
    outcome = DemoResult(run_id=result.run_id, success=result.success)
    for event in result.get_asset_materialization_events():
        mat = event.event_specific_data.materialization
        meta = {k: v.value for k, v in mat.metadata.items()}
        outcome.materializations[mat.asset_key.to_user_string()] = meta
        echo(
            f"  {mat.asset_key.to_user_string():<28} delta v{meta.get('delta_version')}  "
            f"{meta.get('dagster/row_count')} rows  {meta.get('table_uri')}"
        )
    state = "succeeded" if result.success else "FAILED"
    echo(f"  run {result.run_id} {state} in {time.monotonic() - started:.1f}s")
    if not result.success:
        return outcome

    echo("Verifying the audit chain")
    outcome.audit = verify_audit_log(settings)
    report = outcome.audit
    echo(
        f"  {report.events} events, head #{report.head_seq} "
        + ("intact" if report.ok else f"BROKEN at #{report.broken.seq}: {report.broken.reason}")
    )
    return outcome
