"""Prometheus metrics of pipeline runs, read from the Dagster instance's event log at scrape
time (`mlsec metrics` serves them).

No pushgateway and nothing new for a run to write: every run already records what a scraper
wants in its events (each materialization's rows, Delta version, transform time and tokens
minted; each gate's check evaluation; the run's own start and end), so a collector follows
finished runs through the event log, as the lineage sensor does, and counts them once each.
A run that ended while nothing scraped is counted at the next scrape; counters start from the
instance's history when `mlsec metrics` starts.

Labels are asset keys, check names, job names and token domains: bounded sets the code
defines, never data.
"""

from __future__ import annotations

import re
import threading
from collections import Counter as Tally
from collections.abc import Iterator
from typing import Any

import dagster as dg
from dagster._core.event_api import RunStatusChangeRecordsFilter
from dagster._core.events import DagsterEventType
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.registry import Collector

#: Run durations, seconds: 1 s to 2 h.
RUN_SECONDS_BUCKETS = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0)
#: Run ends read per scrape at most (a long history is caught up over several scrapes).
RUNS_PER_SCRAPE = 500
_MINTED = re.compile(r"^tokens/(?P<domain>[a-z0-9_]+)/minted$")
_ENDS = {DagsterEventType.RUN_SUCCESS: "success", DagsterEventType.RUN_FAILURE: "failure"}


class PipelineMetrics(Collector):
    """A Prometheus collector over ``instance``'s finished runs (``mlsec_pipeline_*``)."""

    def __init__(self, instance: dg.DagsterInstance) -> None:
        self.instance = instance
        self._lock = threading.Lock()
        self._after: dict[DagsterEventType, int | None] = dict.fromkeys(_ENDS)
        self.runs: Tally[tuple[str, str]] = Tally()
        #: Per job: how many runs took at most each bucket's seconds, and their sum.
        self.run_seconds: dict[str, tuple[list[int], list[float]]] = {}
        self.rows: Tally[str] = Tally()
        self.materializations: Tally[str] = Tally()
        self.last_rows: dict[str, float] = {}
        self.delta_version: dict[str, float] = {}
        self.transform_seconds: dict[str, float] = {}
        self.checks: Tally[tuple[str, str, str]] = Tally()
        self.tokens: Tally[str] = Tally()

    def refresh(self) -> None:
        """Count the runs that ended since the last refresh."""
        with self._lock:
            for kind, status in _ENDS.items():
                result = self.instance.fetch_run_status_changes(
                    RunStatusChangeRecordsFilter(kind, after_storage_id=self._after[kind]),
                    limit=RUNS_PER_SCRAPE,
                    ascending=True,
                )
                for record in result.records:
                    self._count_run(record, status)
                    self._after[kind] = record.storage_id

    def _count_run(self, end: dg.EventLogRecord, status: str) -> None:
        run = self.instance.get_run_by_id(end.run_id)
        job = run.job_name if run is not None else "unknown"
        self.runs[(job, status)] += 1
        stats = self.instance.get_run_stats(end.run_id)
        if stats.start_time is not None:
            seconds = max(end.timestamp - stats.start_time, 0.0)
            counts, total = self.run_seconds.setdefault(
                job, ([0] * (len(RUN_SECONDS_BUCKETS) + 1), [0.0])
            )
            for i, bound in enumerate((*RUN_SECONDS_BUCKETS, float("inf"))):
                counts[i] += seconds <= bound
            total[0] += seconds
        records = self.instance.get_records_for_run(
            end.run_id,
            of_type={
                DagsterEventType.ASSET_MATERIALIZATION,
                DagsterEventType.ASSET_CHECK_EVALUATION,
            },
        ).records
        for record in records:
            event = record.event_log_entry.dagster_event
            if event is None:
                continue
            if event.event_type is DagsterEventType.ASSET_CHECK_EVALUATION:
                check = event.event_specific_data
                outcome = "passed" if check.passed else "failed"
                self.checks[(check.asset_key.to_user_string(), check.check_name, outcome)] += 1
            elif record.asset_materialization is not None:
                self._count_materialization(record.asset_materialization)

    def _count_materialization(self, materialization: dg.AssetMaterialization) -> None:
        asset = materialization.asset_key.to_user_string()
        self.materializations[asset] += 1
        for key, entry in materialization.metadata.items():
            value = getattr(entry, "value", entry)
            if not isinstance(value, int | float) or isinstance(value, bool):
                continue
            if key == "dagster/row_count":
                self.rows[asset] += value
                self.last_rows[asset] = value
            elif key == "delta_version":
                self.delta_version[asset] = value
            elif key == "transform_seconds":
                self.transform_seconds[asset] = value
            elif match := _MINTED.match(key):
                self.tokens[match["domain"]] += value

    def collect(self) -> Iterator[Any]:
        self.refresh()
        with self._lock:
            yield _counter("runs", "Finished runs by job and status.", ["job", "status"], self.runs)
            yield _histogram(self.run_seconds)
            yield _counter(
                "materializations", "Materializations by asset.", ["asset"], self.materializations
            )
            yield _counter("rows", "Rows written by asset (all runs).", ["asset"], self.rows)
            yield _gauge("last_rows", "Rows of the latest materialization.", self.last_rows)
            yield _gauge("delta_version", "Delta version of the latest write.", self.delta_version)
            yield _gauge(
                "transform_seconds", "Transform time of the latest run.", self.transform_seconds
            )
            yield _counter(
                "checks",
                "Gate and check evaluations by asset, check and outcome.",
                ["asset", "check", "outcome"],
                self.checks,
            )
            yield _counter(
                "tokens_minted", "Tokens minted by token domain.", ["domain"], self.tokens
            )


def _name(name: str) -> str:
    return f"mlsec_pipeline_{name}"


def _counter(name: str, doc: str, labels: list[str], tally: Tally) -> CounterMetricFamily:
    family = CounterMetricFamily(_name(name), doc, labels=labels)
    for key, value in sorted(tally.items()):
        family.add_metric(list(key) if isinstance(key, tuple) else [key], value)
    return family


def _gauge(name: str, doc: str, values: dict[str, float]) -> GaugeMetricFamily:
    family = GaugeMetricFamily(_name(name), doc, labels=["asset"])
    for asset, value in sorted(values.items()):
        family.add_metric([asset], value)
    return family


def _histogram(observed: dict[str, tuple[list[int], list[float]]]) -> HistogramMetricFamily:
    family = HistogramMetricFamily(
        _name("run_seconds"), "Run durations by job (start to end).", labels=["job"]
    )
    bounds = [*(str(b) for b in RUN_SECONDS_BUCKETS), "+Inf"]
    for job, (counts, total) in sorted(observed.items()):
        family.add_metric([job], list(zip(bounds, counts, strict=True)), total[0])
    return family
