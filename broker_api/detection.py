"""Exfiltration detection: per subject and project, the three ways a permitted caller collects
more than its work needs (thresholds and actions in the policy's ``detection``,
:mod:`broker_api.policy.guards`):

- entity enumeration: distinct entity keys asked for through ``/feature/vector``;
- pagination sweep: pages fetched by cursor (walking a dataset);
- filter probing: distinct values of one filter in otherwise identical queries (same dataset,
  columns, order and other filters).

The request path only notes what it saw, in memory (no round trip: the accepted path stays as
cheap as it was). A keeper thread sends the notes to the counters all replicas share
(:mod:`mlsec_platform.serving.disclosures`, keyed hashes only) every :data:`FLUSH_SECONDS`, gets
back each watch's distinct items within its window and, at a threshold, acts: a hold on the
subject in the shared table (every replica refuses it within a flush), an audit event
``broker.exfiltration.suspected`` and the metric ``broker_exfiltration_alerts_total``. It also
reads the holds in force, which the request path checks against the caller
(:meth:`ExfiltrationWatch.check`). A detection is therefore at most about a flush late, which
is no loss for sweeps that take hundreds of requests.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import orjson
from prometheus_client import CollectorRegistry, Counter

from broker_api.errors import RequestRefused
from broker_api.policy.guards import Action, Detection, Detector, Guards
from broker_api.principal import Principal
from mlsec_platform.serving.counters import CountersUnavailable
from mlsec_platform.serving.disclosures import Hold, SharedDisclosures

log = logging.getLogger(__name__)

#: How often notes go to the shared counters and holds come back (seconds).
FLUSH_SECONDS = 0.5
#: Notes kept while the counters do not answer; past it the oldest are dropped.
MAX_NOTES = 100_000
#: How long a demand for a new token holds (seconds).
REAUTHENTICATE_SECONDS = 86_400.0
#: The audit event of a detection.
ALERT_EVENT = "broker.exfiltration.suspected"


class SubjectHeld(RequestRefused):
    """A detector's action on the caller is in force."""

    def __init__(self, hold: Hold, retry_after: int | None = None) -> None:
        if hold.action == Action.THROTTLE:
            status, reason = 429, "throttled after suspected exfiltration"
        elif hold.action == Action.REAUTHENTICATE:
            status, reason = 401, "a new token is required after suspected exfiltration"
        else:
            status = 403
            reason = "subject suspended after suspected exfiltration: an operator resumes it"
        headers = {"Retry-After": str(retry_after)} if retry_after else None
        super().__init__(f"{reason} ({hold.detector})", status=status, headers=headers)


class ExfiltrationWatch:
    """Notes, detections and holds of one replica (see the module)."""

    def __init__(
        self,
        store: SharedDisclosures,
        key: bytes,
        guards: Callable[[], Guards],
        alert: Callable[[str, dict[str, Any]], Any],
        registry: CollectorRegistry,
    ) -> None:
        self._store = store
        self._key = hashlib.blake2b(key, person=b"mlsec-watch").digest()
        self._guards = guards
        self._alert = alert
        #: (watch, subject, item, window) noted since the last flush
        self._notes: list[tuple[str, str, str, float]] = []
        #: watch -> (detector, subject, project)
        self._watches: dict[str, tuple[Detector, str, str]] = {}
        self._held: dict[str, Hold] = {}
        self._lock = threading.Lock()
        self.alerts_total = Counter(
            "exfiltration_alerts",
            "Suspected exfiltrations detected, by detector and action taken.",
            ["detector", "action"],
            namespace="broker",
            registry=registry,
        )
        self.held_total = Counter(
            "held_requests",
            "Requests refused because a detection's action is in force.",
            ["action"],
            namespace="broker",
            registry=registry,
        )
        self._stop = threading.Event()
        self._keeper = threading.Thread(target=self._keep, name="broker-watch", daemon=True)
        self._keeper.start()

    # The request path: a dictionary lookup, and notes in memory.

    def check(self, principal: Principal) -> None:
        """Refuse the caller if a detection's action on it is in force."""
        hold = self._held.get(principal.subject)
        if hold is None:
            return
        now = time.time()
        if hold.until is not None and hold.until <= now:
            return
        if hold.action == Action.REAUTHENTICATE and principal.claims.get("iat", 0) > hold.since:
            return  # a token issued after the detection
        self.held_total.labels(action=hold.action).inc()
        wait = None if hold.until is None else max(1, round(hold.until - now))
        raise SubjectHeld(hold, wait if hold.action == Action.THROTTLE else None)

    def looked_up(self, principal: Principal, group: str, entities: Iterable[str]) -> None:
        """Entity keys asked for through ``/feature/vector``."""
        self._note(Detector.ENUMERATION, principal, group, entities)

    def paged(self, principal: Principal, body: Any, offset: int) -> None:
        """A ``/query`` page: a sweep's step when it follows a cursor, a probe's when it is a
        first page with filters (each filter the one that varies, in turn)."""
        if body.cursor:
            self._note(Detector.SWEEP, principal, body.dataset, [f"{body.cursor}"])
            return
        if not body.filters:
            return
        shape = [body.dataset, body.columns, [f"{o.column} {o.direction}" for o in body.order_by]]
        filters = [(f.column, f.op.value, f.value) for f in body.filters]
        for i, (column, op, value) in enumerate(filters):
            others = [f for j, f in enumerate(filters) if j != i]
            watch = orjson.dumps([*shape, others, column, op], default=str).decode()
            self._note(Detector.PROBING, principal, watch, [orjson.dumps(value, default=str)])

    def _note(self, detector: Detector, principal: Principal, scope: str, items: Iterable) -> None:
        detection = self._guards().detection.get(detector)
        if detection is None:
            return
        watch = self._hash(f"{detector}|{principal.project}|{principal.subject}|{scope}")
        window = float(detection.window_seconds)
        notes = [(watch, principal.subject, self._hash(item), window) for item in items]
        with self._lock:
            self._watches[watch] = (detector, principal.subject, principal.project)
            self._notes.extend(notes)
            if len(self._notes) > MAX_NOTES:
                del self._notes[: len(self._notes) - MAX_NOTES]

    def _hash(self, value: str | bytes) -> str:
        data = value if isinstance(value, bytes) else value.encode()
        return hashlib.blake2b(data, key=self._key, digest_size=16).hexdigest()

    # The keeper: shared counts, detections and holds.

    def _keep(self) -> None:
        while not self._stop.wait(FLUSH_SECONDS):
            try:
                self.flush()
            except CountersUnavailable as exc:
                log.warning("exfiltration watch: %s", exc)

    def flush(self) -> None:
        """Send the notes, act on the watches at their threshold, read the holds in force."""
        with self._lock:
            notes, self._notes = self._notes, []
            watches = dict(self._watches)
        if notes:
            try:
                counts = self._store.sight(*zip(*notes, strict=True))
            except CountersUnavailable:
                with self._lock:  # tried again at the next flush
                    self._notes[:0] = notes[-MAX_NOTES:]
                raise
            self._detect(counts, watches)
        self._held = {h.subject: h for h in self._store.holds()}
        with self._lock:  # the watches still needed: those noted since the notes were taken
            pending = {n[0] for n in self._notes}
            self._watches = {w: v for w, v in self._watches.items() if w in pending}

    def _detect(self, counts: dict[str, int], watches: dict[str, tuple]) -> None:
        detection = self._guards().detection
        for watch, count in counts.items():
            detector, subject, project = watches[watch]
            rule = detection.get(detector)
            if rule is None or count < rule.threshold or subject in self._held:
                continue
            self._act(rule, subject, project, count)

    def _act(self, rule: Detection, subject: str, project: str, count: int) -> None:
        # Reauthenticate: a day, longer than any token lives (only older tokens are refused).
        seconds = {
            Action.SUSPEND: None,
            Action.THROTTLE: float(rule.throttle_seconds),
            Action.REAUTHENTICATE: REAUTHENTICATE_SECONDS,
        }[rule.action]
        since = self._store.hold(subject, rule.action.value, rule.detector.value, seconds)
        if since is None:  # another replica held the subject first, and alerted
            return
        stamp = since.timestamp()
        self._held[subject] = Hold(
            subject,
            rule.action.value,
            rule.detector.value,
            stamp,
            None if seconds is None else stamp + seconds,
        )
        self.alerts_total.labels(detector=rule.detector.value, action=rule.action.value).inc()
        self._alert(
            ALERT_EVENT,
            {
                "subject": subject,
                "project": project,
                "detector": rule.detector.value,
                "action": rule.action.value,
                "count": count,
                "threshold": rule.threshold,
                "window_seconds": rule.window_seconds,
                "severity": "high",
            },
        )

    def close(self) -> None:
        """Stop the keeper after a last flush (what was noted is still counted)."""
        self._stop.set()
        self._keeper.join(timeout=5)
        try:
            self.flush()
        except CountersUnavailable as exc:
            log.warning("exfiltration watch: last flush failed: %s", exc)
