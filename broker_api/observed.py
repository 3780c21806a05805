"""What the broker tells operators about each request once its answer has left: the request
metrics, one JSON log line (``mlsec_platform.telemetry.request_log``) and, for a read of a
dataset, its OpenLineage run (``mlsec_platform.telemetry.lineage``).

All of it comes from the request's audit event, which already says who asked for what and what
was decided, and none of it can hold up or fail a request: the line is written after the
answer, and lineage goes through the emitter's bounded queue.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from openlineage.client.event_v2 import RunState

from mlsec_platform.telemetry.datasets import Datasets
from mlsec_platform.telemetry.lineage import (
    BROKER_NAMESPACE,
    LineageEmitter,
    MlsecRequestRunFacet,
    error,
    run_event,
    run_id,
)
from mlsec_platform.telemetry.request_log import RequestLog, decision

#: Routes that read a dataset's rows, and the OpenLineage job each is.
READS = {
    "/query": "broker.query",
    "/feature/vector": "broker.feature_vector",
    "/feature/historical": "broker.feature_historical",
}


class ObservedRequests:
    """Metrics, log line and lineage of each answered request."""

    def __init__(self, metrics: Any, log: RequestLog, lineage: LineageEmitter, datasets: Datasets):
        self.metrics = metrics
        self.log = log
        self.lineage = lineage
        self.datasets = datasets

    def __call__(self, event: dict, route: str, status: int, seconds: float) -> None:
        """``event``: the request's audit event; ``route``: its route template; ``status``:
        what was answered (503 when the event could not be recorded)."""
        self.metrics.observe_request(route, status, seconds)
        self.log.write(
            {
                **event,
                "route": route,
                "status": status,
                "decision": decision(status),
                "latency_ms": round(seconds * 1000, 3),
            }
        )
        job = READS.get(route)
        if job is not None and self.lineage.enabled and isinstance(event.get("dataset"), str):
            self.lineage.emit(*self.read_run(event, job, status, seconds))

    def read_run(self, event: dict, job: str, status: int, seconds: float) -> list:
        """The START and the COMPLETE (or FAIL) of one read, with the dataset it read: the
        columns served and the Delta version pinned."""
        dataset, version = event["dataset"], event.get("version")
        columns = event.get("columns")
        try:
            if job == READS["/feature/vector"]:
                read = self.datasets.online(dataset, version)
            else:
                read = self.datasets.input(dataset, version, columns=columns)
        except KeyError:  # not a catalog dataset (refused as unknown): nothing was read
            return []
        ended = datetime.now(UTC)
        run = run_id("broker", event["request_id"])
        facets = {
            "mlsec_request": MlsecRequestRunFacet(
                requestId=event["request_id"],
                decisionId=event.get("decision_id"),
                purpose=event.get("purpose"),
                status=status,
                rows=event.get("rows"),
            )
        }
        name = (BROKER_NAMESPACE, job)
        start = run_event(RunState.START, run=run, job=name, at=ended - timedelta(seconds=seconds))
        if status < 400:
            end = run_event(
                RunState.COMPLETE, run=run, job=name, at=ended, inputs=[read], run_facets=facets
            )
        else:
            facets["errorMessage"] = error(f"refused with status {status}")
            end = run_event(RunState.FAIL, run=run, job=name, at=ended, run_facets=facets)
        return [start, end]
