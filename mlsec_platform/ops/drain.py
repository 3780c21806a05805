"""Running the connectors' sensors to completion in this process (demo, tests, benchmarks).

The daemon does the same thing on a timer: evaluate the sensor, add the partitions it asks
for, launch its runs. Here the runs execute in-process against the given instance, so they show
in the Dagster UI exactly like daemon-launched ones.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import dagster as dg

from mlsec_platform.defs.raw.events import RAW_EVENT_ASSETS, nats_events_sensor, pending_events
from mlsec_platform.defs.raw.files import RAW_FILE_ASSETS, landing_files_sensor, raw_file_assets

_ASSETS = {
    **{a.key: a for a in RAW_FILE_ASSETS.values()},
    **{a.key: a for a in RAW_EVENT_ASSETS.values()},
}


def _asset(key: dg.AssetKey) -> dg.AssetsDefinition:
    """The connector asset of ``key``; one of a source registered after import is built now."""
    if key not in _ASSETS:
        _ASSETS.update({a.key: a for a in raw_file_assets().values()})
    return _ASSETS[key]


def _job(name: str, key: dg.AssetKey, resources: dict[str, Any]) -> dg.JobDefinition:
    """The sensor's named job for ``key`` (``ingest_<source>``), as the daemon would launch it:
    the run shows under that name, not as an ad-hoc materialization."""
    definitions = dg.Definitions(
        assets=[_asset(key)],
        jobs=[dg.define_asset_job(name, selection=[key])],
        resources=resources,
    )
    return definitions.resolve_job_def(name)


QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}


@dataclass(frozen=True)
class BatchRun:
    asset: str
    partition: str
    run_id: str
    metadata: dict[str, Any]


def _run_requests(sensor, instance, resources, echo, quiet: bool) -> list[BatchRun]:
    with dg.build_sensor_context(instance=instance, resources=resources) as context:
        result = sensor(context)
    for request in result.dynamic_partitions_requests or []:
        instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
    runs = []
    jobs: dict[str, dg.JobDefinition] = {}
    for request in result.run_requests or []:
        [key] = request.asset_selection
        if request.job_name not in jobs:
            jobs[request.job_name] = _job(request.job_name, key, resources)
        outcome = jobs[request.job_name].execute_in_process(
            partition_key=request.partition_key,
            instance=instance,
            tags={**request.tags, "dagster/sensor_name": sensor.name},
            run_config=QUIET if quiet else None,
        )
        mat = outcome.get_asset_materialization_events()[0].event_specific_data.materialization
        meta = {k: v.value for k, v in mat.metadata.items()}
        runs.append(BatchRun(key.to_user_string(), request.partition_key, outcome.run_id, meta))
        notes = [
            f"{meta[k]:,} {label}"
            for k, label in (
                ("duplicates_dropped", "duplicate events"),
                ("quarantined", "quarantined"),
            )
            if meta.get(k)
        ]
        if meta.get("duplicate_of"):
            notes.append(f"same content as {meta['duplicate_of']}")
        echo(
            f"  {key.to_user_string():<38} {meta.get('rows', 0):>8,} rows  "
            f"delta v{meta.get('delta_version', '-')}  {'; '.join(notes)}".rstrip()
        )
    return runs


def drain_landing(instance, resources, echo: Callable[[str], None] = print, quiet=True):
    """Runs of every file batch waiting in landing."""
    return _run_requests(landing_files_sensor, instance, resources, echo, quiet)


def drain_events(instance, resources, echo: Callable[[str], None] = print, quiet=True):
    """Event batches until no event waits on any domain's consumer."""
    runs: list[BatchRun] = []
    while any(pending_events(resources["nats_connector"], d) for d in RAW_EVENT_ASSETS):
        batch = _run_requests(nats_events_sensor, instance, resources, echo, quiet)
        if not batch:
            break
        runs += batch
    return runs
