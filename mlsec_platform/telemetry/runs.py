"""OpenLineage run events for every Dagster run, read from the instance's event log.

The event log is the one place that sees every materialization, whoever launched the run (a
sensor, automation, `mlsec curate`, the UI) and whichever code location ran it (Raw,
curated, warehouse, lifecycle). So lineage follows it, as a sensor does (``defs/lineage``),
rather than hooks on jobs that automation runs would bypass:

- a run's start is the START of the Dagster job's OpenLineage run;
- its end (success or failure) is, for each asset it materialized, a START and a COMPLETE of
  that asset's own run (job: the asset key; parent: the Dagster run), whose output is the
  asset's table at the Delta version written and whose inputs are the versions it read
  (``lineage/inputs``); each asset it planned but did not materialize ends in FAIL; then the
  job's own COMPLETE or FAIL.

Run ids are derived from Dagster's, so an event sent twice (a sensor tick retried after the
receiver was down) is the same event to the receiver.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import dagster as dg
from dagster._core.event_api import RunStatusChangeRecordsFilter
from dagster._core.events import DagsterEventType
from openlineage.client.event_v2 import OutputDataset, RunEvent, RunState

from mlsec_platform.telemetry.datasets import PIPELINE_NAMESPACE, Datasets
from mlsec_platform.telemetry.lineage import error, parent, run_event, run_id

#: The run status changes followed, in the order a tick reads them.
STATUS_CHANGES = (
    DagsterEventType.RUN_START,
    DagsterEventType.RUN_SUCCESS,
    DagsterEventType.RUN_FAILURE,
)


@dataclass
class LineageCursor:
    """The last storage id read of each run status change."""

    after: dict[str, int] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str | None) -> LineageCursor:
        if not text:
            return cls()
        pairs = (part.split("=", 1) for part in text.split(",") if "=" in part)
        return cls({name: int(value) for name, value in pairs})

    def __str__(self) -> str:
        return ",".join(f"{name}={value}" for name, value in sorted(self.after.items()))


def pending(
    instance: dg.DagsterInstance, cursor: LineageCursor, limit: int = 100
) -> Iterator[tuple[dg.EventLogRecord, str]]:
    """Run status changes after ``cursor``, starts first, at most ``limit`` of each kind, with
    their kind. Ends are read only up to the last start read, so a run's START is never sent
    after its end."""
    ceiling: int | None = None
    for kind in STATUS_CHANGES:
        result = instance.fetch_run_status_changes(
            RunStatusChangeRecordsFilter(
                kind, after_storage_id=cursor.after.get(kind.name), before_storage_id=ceiling
            ),
            limit=limit,
            ascending=True,
        )
        if kind is DagsterEventType.RUN_START and result.has_more and result.records:
            ceiling = result.records[-1].storage_id + 1
        for record in result.records:
            yield record, kind.name


def events_of(
    instance: dg.DagsterInstance, record: dg.EventLogRecord, kind: str, datasets: Datasets
) -> list[RunEvent]:
    """The OpenLineage events of one run status change."""
    run = instance.get_run_by_id(record.run_id)
    job = run.job_name if run is not None else "unknown"
    job_run = run_id("dagster", record.run_id)
    at = datetime.fromtimestamp(record.timestamp, UTC)
    if kind == DagsterEventType.RUN_START.name:
        return [run_event(RunState.START, run=job_run, job=(PIPELINE_NAMESPACE, job), at=at)]
    started = datetime.fromtimestamp(run_started(instance, record.run_id, record.timestamp), UTC)
    events, outputs = asset_runs(instance, record.run_id, job, started, datasets)
    failed = kind == DagsterEventType.RUN_FAILURE.name
    facets = {"errorMessage": error("the Dagster run failed")} if failed else {}
    events.append(
        run_event(
            RunState.FAIL if failed else RunState.COMPLETE,
            run=job_run,
            job=(PIPELINE_NAMESPACE, job),
            at=at,
            outputs=outputs,
            run_facets=facets,
        )
    )
    return events


def run_started(instance: dg.DagsterInstance, dagster_run: str, fallback: float) -> float:
    stats = instance.get_run_stats(dagster_run)
    return stats.start_time or fallback


def asset_runs(
    instance: dg.DagsterInstance,
    dagster_run: str,
    job: str,
    started: datetime,
    datasets: Datasets,
) -> tuple[list[RunEvent], list[OutputDataset]]:
    """Each asset's own run within Dagster run ``dagster_run``: START and COMPLETE for what it
    materialized, START and FAIL for what it planned and did not."""
    records = instance.get_records_for_run(
        dagster_run,
        of_type={
            DagsterEventType.ASSET_MATERIALIZATION,
            DagsterEventType.ASSET_MATERIALIZATION_PLANNED,
        },
    ).records
    planned: set[str] = set()
    events: list[RunEvent] = []
    outputs: list[OutputDataset] = []
    done: set[str] = set()
    facets = {"parent": parent(run_id("dagster", dagster_run), job)}
    for record in records:
        dagster_event = record.event_log_entry.dagster_event
        if dagster_event is None or dagster_event.asset_key is None:
            continue
        asset = dagster_event.asset_key.to_user_string()
        materialization = record.asset_materialization
        if materialization is None:
            planned.add(asset)
            continue
        done.add(asset)
        meta = materialization.metadata
        inputs = _inputs(meta)
        output = datasets.output(
            asset, _int(meta.get("delta_version")), inputs, table=_text(meta.get("table"))
        )
        outputs.append(output)
        run = run_id("dagster", dagster_run, asset)
        name = (PIPELINE_NAMESPACE, asset)
        at = datetime.fromtimestamp(record.timestamp, UTC)
        events += [
            run_event(RunState.START, run=run, job=name, at=started, run_facets=facets),
            run_event(
                RunState.COMPLETE,
                run=run,
                job=name,
                at=at,
                inputs=[datasets.input(a, v) for a, v in inputs.items()],
                outputs=[output],
                run_facets=facets,
            ),
        ]
    for asset in sorted(planned - done):
        run = run_id("dagster", dagster_run, asset)
        name = (PIPELINE_NAMESPACE, asset)
        failed = {**facets, "errorMessage": error(f"{asset} was not materialized")}
        events += [
            run_event(RunState.START, run=run, job=name, at=started, run_facets=facets),
            run_event(RunState.FAIL, run=run, job=name, run_facets=failed),
        ]
    return events, outputs


def _value(entry: Any) -> Any:
    return getattr(entry, "value", entry)


def _int(entry: Any) -> int | None:
    value = _value(entry)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _text(entry: Any) -> str | None:
    value = _value(entry)
    return value if isinstance(value, str) else None


def _inputs(meta: Mapping[str, Any]) -> dict[str, int | None]:
    """``lineage/inputs``: upstream asset -> Delta version read (None: read as empty)."""
    value = _value(meta.get("lineage/inputs"))
    if not isinstance(value, Mapping):
        return {}
    return {str(k): v if isinstance(v, int) else None for k, v in value.items()}


def publish_lineage(
    instance: dg.DagsterInstance,
    cursor: LineageCursor,
    send: Any,
    datasets: Datasets,
    limit: int = 100,
) -> int:
    """Send the events of the run status changes after ``cursor`` with ``send`` (True when
    the receiver took an event), advancing ``cursor`` past each change whose events all
    arrived; stop at the first that did not (the next call sends it again). The number of
    changes published."""
    published = 0
    for record, kind in pending(instance, cursor, limit):
        if not all(send(event) for event in events_of(instance, record, kind, datasets)):
            break
        cursor.after[kind] = record.storage_id
        published += 1
    return published
