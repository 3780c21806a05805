"""Where an event's freshness goes: the runs' phases, read from the instance's event log.

Every run the sensors launched is a line of marks taken from Dagster's own records: the run's
creation (the sensor's tick submitted it), ``RUN_STARTING`` (the queue handed it to the
launcher), ``RUN_START`` (the run's process is up: Python started, the platform and the code
location imported, the instance opened), the first ``STEP_START`` (the step's resources are
up: Vault logins, lake and engine clients), and each step's start and success. A followed
event is then placed on the runs that carried it: the first Raw batch run that committed
after the gateway accepted it (an event accepted while a batch was being fetched may have
gone to the next one: the table then charges the wait to the Raw step), the first curated
run whose ``silver/order_events`` step started after that commit, and the run whose
online-store step started after that and before the broker showed the event (the upsert
commits inside the step, so the broker may show the event before the step ends: that phase
ends at the earlier of the two). The phases between those marks add up to the latency.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

import dagster as dg

from mlsec_platform.defs.raw.events import ingest_events_job_name

RAW_JOB = ingest_events_job_name("order_status")
#: The Raw batch's commit (its run then checks the contract in a step of its own).
RAW_STEP = "raw__events_order_status"
SILVER_STEP = "silver__order_events"
#: The warehouse's multi-asset step: it upserts the online store among its loads.
ONLINE_STEP = "warehouse_loads"
MARKS = {
    dg.DagsterEventType.RUN_STARTING: "starting",
    dg.DagsterEventType.RUN_START: "start",
    dg.DagsterEventType.RUN_SUCCESS: "end",
    dg.DagsterEventType.RUN_FAILURE: "end",
}


@dataclass
class Run:
    """One run's marks, in seconds since the epoch."""

    run_id: str
    job: str
    created: float
    marks: dict[str, float] = field(default_factory=dict)
    steps: dict[str, tuple[float, float]] = field(default_factory=dict)

    @property
    def first_step(self) -> float | None:
        return min((s for s, _ in self.steps.values()), default=None)

    @property
    def is_raw(self) -> bool:
        return self.job == RAW_JOB


def runs_since(instance: dg.DagsterInstance, since: float) -> list[Run]:
    """Every run created after ``since``, with its marks, oldest first."""
    records = instance.get_run_records(
        dg.RunsFilter(created_after=datetime.fromtimestamp(since, UTC))
    )
    runs = []
    for record in sorted(records, key=lambda r: r.create_timestamp):
        run = Run(
            record.dagster_run.run_id,
            record.dagster_run.job_name,
            record.create_timestamp.timestamp(),
        )
        starts: dict[str, float] = {}
        for entry in instance.all_logs(run.run_id):
            event = entry.dagster_event
            if event is None:
                continue
            if event.event_type in MARKS:
                run.marks[MARKS[event.event_type]] = entry.timestamp
            elif event.event_type == dg.DagsterEventType.STEP_START:
                starts[event.step_key] = entry.timestamp
            elif event.event_type == dg.DagsterEventType.STEP_SUCCESS:
                run.steps[event.step_key] = (starts[event.step_key], entry.timestamp)
        runs.append(run)
    return runs


def run_table(runs: list[Run], origin: float) -> list[str]:
    """One line per run: when created, queue, process start, resources, steps, finish."""
    lines = [
        "  runs (s; created: since publishing began; queue: created -> RUN_STARTING; "
        "process: -> RUN_START; resources: -> first step)"
    ]
    for run in runs:
        m, first = run.marks, run.first_step
        if "start" not in m or first is None:
            lines.append(f"    {run.job:<28} created {run.created - origin:7.1f}  (no step ran)")
            continue
        steps = "  ".join(
            f"{key.split('__', 1)[-1]} {end - start:.1f}"
            for key, (start, end) in sorted(run.steps.items(), key=lambda kv: kv[1])
        )
        last = max(end for _, end in run.steps.values())
        lines.append(
            f"    {run.job:<28} created {run.created - origin:7.1f}  queue "
            f"{m.get('starting', run.created) - run.created:5.1f}  process "
            f"{m['start'] - m.get('starting', run.created):5.1f}  resources "
            f"{first - m['start']:5.1f}  steps: {steps}  finish {m.get('end', last) - last:4.1f}"
        )
    return lines


#: The phases of one event's way, in order (the names of the table's rows).
PHASES = (
    "accepted -> Raw run created (sensor tick, a Raw run in flight)",
    "Raw run: queue and process start",
    "Raw run: resources (Vault logins, clients)",
    "Raw step (dedupe index, fetch, validate, commit, ack)",
    "Raw commit -> curated run created (automation tick, a run in flight)",
    "curated run: queue and process start",
    "curated run: resources",
    "silver/order_events step",
    "silver -> online store committed (features, warehouse steps, later runs)",
    "online commit -> broker shows it (poll every 0.5 s)",
)


def event_phases(runs: list[Run], accepted: float, seen: float) -> list[float] | None:
    """The phases of one event accepted at ``accepted`` and seen at ``seen`` (epoch seconds),
    or None when the runs that carried it cannot be told (a run failed or is missing)."""
    done = [r for r in runs if "start" in r.marks and r.steps]
    raws = sorted((r for r in done if r.is_raw and RAW_STEP in r.steps), key=lambda r: r.first_step)
    curated = [r for r in done if not r.is_raw]
    for raw in raws:
        committed = raw.steps[RAW_STEP][1]
        if committed < accepted:
            continue
        silver = min(
            (r for r in curated if SILVER_STEP in r.steps and r.steps[SILVER_STEP][0] >= committed),
            key=lambda r: r.steps[SILVER_STEP][0],
            default=None,
        )
        if silver is None:
            return None
        silver_end = silver.steps[SILVER_STEP][1]
        online = [
            min(r.steps[ONLINE_STEP][1], seen)
            for r in curated
            if ONLINE_STEP in r.steps and silver_end <= r.steps[ONLINE_STEP][0] <= seen
        ]
        if not online:
            continue  # this batch's way ended after the broker showed the event: a later one
        marks = [
            accepted,
            raw.created,
            raw.marks["start"],
            raw.first_step,
            committed,
            silver.created,
            silver.marks["start"],
            silver.steps[SILVER_STEP][0],
            silver_end,
            min(online),
            seen,
        ]
        clamped = [max(m, accepted) for m in marks]
        return [max(0.0, b - a) for a, b in zip(clamped, clamped[1:], strict=False)]
    return None


def phase_table(phases: list[list[float]], percentile) -> list[str]:
    """Median and p95 of each phase over the followed events placed on their runs."""
    lines = [f"  phases of the followed events ({len(phases)} placed on their runs), s:"]
    lines.append(f"    {'phase':<74} {'p50':>6} {'p95':>6}")
    for i, name in enumerate(PHASES):
        column = sorted(p[i] for p in phases)
        lines.append(
            f"    {name:<74} {percentile(column, 0.5):6.1f} {percentile(column, 0.95):6.1f}"
        )
    totals = sorted(sum(p) for p in phases)
    lines.append(
        f"    {'sum (the latency, to within the clocks)':<74} "
        f"{percentile(totals, 0.5):6.1f} {percentile(totals, 0.95):6.1f}"
    )
    return lines
