"""One audit event per request, committed before the response leaves.

The sink writes from the event loop itself, over a non-blocking Postgres connection: a request
queues its event and awaits it; one writer task commits whatever has queued up in one
multi-row INSERT (group commit: in autocommit, one statement is one transaction) and resolves
the waiting requests. No thread hand-off sits between a request and its commit (measured
alone on these 2 cores: a writer thread added 0.15-0.2 ms to a 0.4 ms commit).

A response is never sent for a request whose event was not recorded: when the log cannot be
written the broker answers 503 instead (fail closed), and when too many events are waiting it
refuses new work rather than buffering without bound. The sink serves one event loop.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import psycopg2
import psycopg2.extensions as pgx
from psycopg2.extras import Json

from mlsec_platform.audit.chain import check_payload, payload_json

EVENT_TYPE = "broker.request"
_INSERT = b"INSERT INTO audit.events (event_id, event_type, actor, run_id, payload) VALUES "


class AuditUnavailable(RuntimeError):
    """The event could not be recorded, so the request is not answered."""


class AuditSink:
    """Group-committing audit writer for one event loop.

    ``connect`` opens a non-blocking (``async_=True``) connection as a role that may only
    INSERT into ``audit.events``; it is awaited, so a credential lookup can leave the loop.
    """

    def __init__(
        self,
        connect: Callable[[], Awaitable[pgx.connection]],
        *,
        actor: str,
        max_batch: int = 256,
        max_waiting: int = 5_000,
        on_depth: Callable[[int], Any] | None = None,
        on_failure: Callable[[], Any] | None = None,
    ) -> None:
        self._connect = connect
        self._actor = actor
        self._max_batch = max_batch
        self._max_waiting = max_waiting
        self._on_depth = on_depth or (lambda depth: None)
        self._on_failure = on_failure or (lambda: None)
        self._queue: list[tuple[Mapping[str, Any], asyncio.Future[str]]] = []
        self._writer: asyncio.Task | None = None
        self._conn: pgx.connection | None = None
        self.batches = 0  # statements written, for metrics and tests

    async def arecord(self, payload: Mapping[str, Any]) -> str:
        """Record one event; returns its id once committed, or raises AuditUnavailable."""
        try:
            check_payload(payload)  # a bad event fails its own request, not its batch
        except ValueError as exc:
            raise AuditUnavailable(str(exc)) from None
        if len(self._queue) >= self._max_waiting:
            raise AuditUnavailable("too many audit events waiting")
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._queue.append((payload, future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_queued())
        return await asyncio.shield(future)  # a cancelled request leaves its event queued

    async def _write_queued(self) -> None:
        while self._queue:
            batch, self._queue = self._queue[: self._max_batch], self._queue[self._max_batch :]
            self._on_depth(len(self._queue))
            try:
                ids = await self._insert([payload for payload, _ in batch])
            except Exception as exc:  # noqa: BLE001 - whatever it is, the batch is not recorded
                self._on_failure()
                self.close()  # a fresh connection (and login) for the next batch
                reason = getattr(exc, "pgerror", None) or str(exc) or type(exc).__name__
                for _, future in batch:
                    if not future.done():
                        future.set_exception(AuditUnavailable(f"audit log unavailable: {reason}"))
                continue
            for (_, future), event_id in zip(batch, ids, strict=True):
                if not future.done():
                    future.set_result(event_id)

    async def _insert(self, payloads: list[Mapping[str, Any]]) -> list[str]:
        if self._conn is None or self._conn.closed:
            self._conn = await self._connect()
            await wait_ready(self._conn)
        conn = self._conn
        ids = [str(uuid.uuid4()) for _ in payloads]
        with conn.cursor() as cur:
            values = b",".join(
                cur.mogrify(
                    "(%s, %s, %s, NULL, %s)",
                    (event_id, EVENT_TYPE, self._actor, Json(dict(p), dumps=payload_json)),
                )
                for event_id, p in zip(ids, payloads, strict=True)
            )
            # One statement: all of the batch or none. The chain trigger links each row.
            cur.execute(_INSERT + values)
            await wait_ready(conn)
        self.batches += 1
        return ids

    def close(self) -> None:
        if self._conn is not None and not self._conn.closed:
            self._conn.close()
        self._conn = None


async def wait_ready(conn: pgx.connection) -> None:
    """Drive a non-blocking connection until its pending work is done, waiting on the loop."""
    loop = asyncio.get_running_loop()
    while True:
        state = conn.poll()
        if state == pgx.POLL_OK:
            return
        if state == pgx.POLL_READ:
            watch, unwatch = loop.add_reader, loop.remove_reader
        elif state == pgx.POLL_WRITE:
            watch, unwatch = loop.add_writer, loop.remove_writer
        else:
            raise psycopg2.OperationalError(f"unexpected poll state {state}")
        ready, fd = loop.create_future(), conn.fileno()
        watch(fd, _resolve, ready)
        try:
            await ready
        finally:
            unwatch(fd)


def _resolve(ready: asyncio.Future) -> None:
    if not ready.done():  # the fd may report ready again before the waiter resumes
        ready.set_result(None)
