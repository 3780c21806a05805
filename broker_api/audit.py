"""One audit event per request, committed before the response leaves.

Requests hand their event to one writer thread, which commits whatever has queued up in a
single transaction (group commit) and then releases the waiting responses. A response is
never sent for a request whose event was not recorded: when the log cannot be written the
broker answers 503 instead (fail closed), and when too many events are waiting it refuses new
work rather than buffering without bound.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Mapping
from concurrent.futures import Future
from typing import Any

from mlsec_platform.audit.chain import AuditLog, AuditWriteError, check_payload

EVENT_TYPE = "broker.request"


class AuditUnavailable(RuntimeError):
    """The event could not be recorded, so the request is not answered."""


class AuditSink:
    def __init__(
        self,
        log: AuditLog,
        *,
        max_batch: int = 256,
        max_waiting: int = 5_000,
        on_depth: Any = None,
        on_failure: Any = None,
    ) -> None:
        self._log = log
        self._max_batch = max_batch
        self._queue: queue.Queue[tuple[Mapping[str, Any], Future[str]] | None] = queue.Queue(
            maxsize=max_waiting
        )
        self._on_depth = on_depth or (lambda depth: None)
        self._on_failure = on_failure or (lambda: None)
        self._thread = threading.Thread(target=self._run, name="broker-audit", daemon=True)
        self._thread.start()

    def record(self, payload: Mapping[str, Any]) -> Future[str]:
        """Queue one event; the future resolves to its id once committed."""
        future: Future[str] = Future()
        try:
            check_payload(payload)  # a bad event fails its own request, not its batch
        except ValueError as exc:
            future.set_exception(AuditUnavailable(str(exc)))
            return future
        try:
            self._queue.put_nowait((payload, future))
        except queue.Full:
            future.set_exception(AuditUnavailable("too many audit events waiting"))
        return future

    async def arecord(self, payload: Mapping[str, Any]) -> str:
        try:
            return await asyncio.wrap_future(self.record(payload))
        except AuditWriteError as exc:
            raise AuditUnavailable(str(exc)) from None

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            batch = [item]
            while len(batch) < self._max_batch:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self._queue.put(None)  # finish this batch, then stop
                    break
                batch.append(nxt)
            self._on_depth(self._queue.qsize())
            try:
                ids = self._log.emit_many([(EVENT_TYPE, payload) for payload, _ in batch])
            except (AuditWriteError, ValueError) as exc:
                self._on_failure()
                for _, future in batch:
                    future.set_exception(AuditUnavailable(f"audit log unavailable: {exc}"))
                continue
            for (_, future), event_id in zip(batch, ids, strict=True):
                future.set_result(event_id)

    def close(self, timeout: float = 10.0) -> None:
        """Commit what is queued, then stop the writer."""
        self._queue.put(None)
        self._thread.join(timeout)
        self._log.close()
