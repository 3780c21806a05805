"""OpenLineage run events: what the pipelines wrote and what the broker served, for a lineage
receiver (Marquez, a data catalog) or a file, chosen by configuration.

Off unless configured (``MLSEC_OPENLINEAGE_URL`` or ``MLSEC_OPENLINEAGE_FILE``): the audit log
is the record of every read and write, and lineage is a copy for the tools that draw graphs, so
nothing fills a disk or dials out until an operator asks for it.

Sending never holds up the work it describes: :class:`LineageEmitter` puts events on a bounded
queue that one thread of its own drains; when the receiver is down or slow and the queue is
full, an event is dropped and counted (``openlineage_events_total{outcome="dropped"}``), and
the request or run goes on.

Datasets and their facets: :mod:`mlsec_platform.telemetry.datasets`.
"""

from __future__ import annotations

import logging
import queue
import threading
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime

import attr
from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
from openlineage.client.facet_v2 import (
    RunFacet,
    error_message_run,
    parent_run,
)
from openlineage.client.transport import Transport
from openlineage.client.transport.file import FileConfig, FileTransport
from openlineage.client.transport.http import HttpConfig, HttpTransport
from prometheus_client import CollectorRegistry, Counter

import mlsec_platform
from mlsec_platform.settings import PlatformSettings
from mlsec_platform.telemetry.datasets import PIPELINE_NAMESPACE

log = logging.getLogger(__name__)

#: Who wrote the events (a URI, as the spec asks).
PRODUCER = f"urn:mlsec-platform:{getattr(mlsec_platform, '__version__', '0.1.0')}"
#: Job namespace of the broker's endpoints (the asset graph's: PIPELINE_NAMESPACE).
BROKER_NAMESPACE = "mlsec-broker"
#: Events waiting to be sent at most; past it new ones are dropped (and counted).
QUEUE_CAPACITY = 10_000
#: How long one HTTP send may take before it counts as failed (s).
SEND_TIMEOUT_SECONDS = 5.0
#: A fixed namespace for run ids derived from the platform's own ids (UUID v5).
_RUN_IDS = uuid.UUID("7d0c3a52-4f0e-4a57-9d8b-2b61f0b9c1e4")


@attr.define
class MlsecRequestRunFacet(RunFacet):
    """Custom facet of a broker read: the ids that find its audit event, and what it served
    for. No subject, token or value: the audit log holds who asked."""

    requestId: str  # noqa: N815
    decisionId: str | None  # noqa: N815
    purpose: str | None
    status: int
    rows: int | None

    @staticmethod
    def _get_schema() -> str:
        return "urn:mlsec-platform:facets:MlsecRequestRunFacet"


def run_id(*parts: str) -> str:
    """A stable OpenLineage run id for the platform's own ids (the START and the end of one
    run, emitted by different processes or sensor ticks, carry the same id)."""
    return str(uuid.uuid5(_RUN_IDS, "/".join(parts)))


def transport_from_settings(settings: PlatformSettings) -> Transport | None:
    """The configured transport: HTTP (``openlineage_url``) or a JSON-lines file
    (``openlineage_file``); None when neither is set (lineage off)."""
    if settings.openlineage_url:
        return HttpTransport(
            HttpConfig(
                url=settings.openlineage_url,
                timeout=SEND_TIMEOUT_SECONDS,
                retry={"total": 0},  # the emitter counts a failure; the audit log is the record
            )
        )
    if settings.openlineage_file:
        settings.openlineage_file.parent.mkdir(parents=True, exist_ok=True)
        return FileTransport(FileConfig(log_file_path=str(settings.openlineage_file), append=True))
    return None


class LineageEmitter:
    """Events to one transport, from a bounded queue drained by a thread of its own.

    ``emit`` never blocks and never raises: a full queue drops the event; a send that fails
    is logged (without the event) and counted. Counts are on ``registry`` (a service's own
    Prometheus registry) as ``openlineage_events_total{outcome=sent|dropped|failed}``."""

    def __init__(
        self,
        transport: Transport | None,
        *,
        capacity: int = QUEUE_CAPACITY,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.transport = transport
        self.registry = registry if registry is not None else CollectorRegistry()
        self.events = Counter(
            "openlineage_events",
            "OpenLineage events by outcome (sent, dropped: queue full, failed: receiver error).",
            ["outcome"],
            registry=self.registry,
        )
        self._queue: queue.Queue[RunEvent | None] = queue.Queue(maxsize=capacity)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_settings(
        cls, settings: PlatformSettings, registry: CollectorRegistry | None = None
    ) -> LineageEmitter:
        return cls(transport_from_settings(settings), registry=registry)

    @property
    def enabled(self) -> bool:
        return self.transport is not None

    def emit(self, *events: RunEvent) -> None:
        if self.transport is None:
            return
        if self._thread is None:
            with self._lock:  # started by the first event: `send` alone needs no thread
                if self._thread is None:
                    self._thread = threading.Thread(
                        target=self._drain, name="openlineage", daemon=True
                    )
                    self._thread.start()
        for event in events:
            try:
                self._queue.put_nowait(event)
            except queue.Full:
                self.events.labels(outcome="dropped").inc()

    def count(self, outcome: str) -> float:
        """Events so far with ``outcome`` (sent, dropped, failed)."""
        value = self.registry.get_sample_value("openlineage_events_total", {"outcome": outcome})
        return value or 0.0

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every queued event was sent or failed (True), at most ``timeout`` s."""
        if self._thread is None:
            return True
        done = threading.Event()

        def wait() -> None:
            self._queue.join()
            done.set()

        threading.Thread(target=wait, daemon=True).start()
        return done.wait(timeout)

    def close(self, timeout: float = 10.0) -> None:
        if self._thread is None:
            return
        self.flush(timeout)
        try:
            self._queue.put_nowait(None)
        except queue.Full:
            return  # the daemon thread ends with the process
        self._thread.join(timeout)
        self._thread = None

    def _drain(self) -> None:
        assert self.transport is not None
        while True:
            event = self._queue.get()
            try:
                if event is None:
                    return
                self.send(event)
            finally:
                self._queue.task_done()

    def send(self, event: RunEvent) -> bool:
        """Send ``event`` now, in this thread (the sensor's at-least-once path): True if the
        receiver took it."""
        assert self.transport is not None
        try:
            self.transport.emit(event)
        except Exception as exc:  # noqa: BLE001 - any receiver failure only counts
            self.events.labels(outcome="failed").inc()
            log.warning("OpenLineage event not delivered: %s", type(exc).__name__)
            return False
        self.events.labels(outcome="sent").inc()
        return True


def run_event(
    state: RunState,
    *,
    run: str,
    job: tuple[str, str],
    at: datetime | None = None,
    inputs: Iterable[InputDataset] = (),
    outputs: Iterable[OutputDataset] = (),
    run_facets: Mapping[str, RunFacet] | None = None,
) -> RunEvent:
    """One OpenLineage run event (``job``: namespace and name)."""
    return RunEvent(
        eventType=state,
        eventTime=(at or datetime.now(UTC)).isoformat(),
        run=Run(runId=run, facets=dict(run_facets or {})),
        job=Job(namespace=job[0], name=job[1]),
        inputs=list(inputs),
        outputs=list(outputs),
        producer=PRODUCER,
    )


def parent(run: str, job_name: str) -> parent_run.ParentRunFacet:
    """The facet naming the Dagster run (and job) an asset's run belongs to."""
    return parent_run.ParentRunFacet(
        run=parent_run.Run(runId=run),
        job=parent_run.Job(namespace=PIPELINE_NAMESPACE, name=job_name),
    )


def error(message: str) -> error_message_run.ErrorMessageRunFacet:
    return error_message_run.ErrorMessageRunFacet(message=message, programmingLanguage="python")
