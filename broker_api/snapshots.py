"""Curated tables at pinned Delta versions, read with the broker's read-only keys, queried on
DuckDB.

A Delta version never changes once committed, so the broker keeps recently read versions in
memory (bounded by bytes, least recently used out first) and every page of a cursor reads the
very version its first page read. Each query runs on a thread-local DuckDB cursor, with the
snapshot registered under a name the broker makes itself, and is interrupted at its time cap.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import duckdb
import pyarrow as pa
from deltalake import DeltaTable
from deltalake.exceptions import DeltaError, TableNotFoundError

from broker_api.compiler import CompiledQuery
from broker_api.errors import RequestRefused
from mlsec_platform.catalog.governance import DatasetSpec

#: The name compiled queries read from; registered per query on the calling thread's cursor.
RELATION = "snapshot"


class SnapshotUnavailable(RequestRefused, LookupError):
    """The table or the requested version cannot be read (never written, or vacuumed)."""

    http_status = 410


class QueryTimeout(RequestRefused, TimeoutError):
    """The query ran past its policy's time cap and was interrupted."""

    http_status = 504


class SnapshotCache:
    """Tables by (dataset, version), least recently used evicted past ``max_bytes``."""

    def __init__(
        self,
        table_uri: Callable[[DatasetSpec], str],
        storage_options: Callable[[], dict[str, str]],
        *,
        max_bytes: int = 1 << 30,
    ) -> None:
        self._uri = table_uri
        self._options = storage_options
        self._max = max_bytes
        self._tables: OrderedDict[tuple[str, int], pa.Table] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self._loading: dict[tuple[str, int], threading.Lock] = {}

    def get(self, spec: DatasetSpec, version: int) -> pa.Table:
        key = (spec.id, version)
        with self._lock:
            if key in self._tables:
                self._tables.move_to_end(key)
                return self._tables[key]
            loading = self._loading.setdefault(key, threading.Lock())
        with loading:  # one reader per version; the others wait for it
            with self._lock:
                if key in self._tables:
                    return self._tables[key]
            table = self._read(spec, version)
            with self._lock:
                self._loading.pop(key, None)
                self._tables[key] = table
                self._bytes += table.nbytes
                while self._bytes > self._max and len(self._tables) > 1:
                    _, evicted = self._tables.popitem(last=False)
                    self._bytes -= evicted.nbytes
            return table

    def _read(self, spec: DatasetSpec, version: int) -> pa.Table:
        try:
            delta = DeltaTable(self._uri(spec), storage_options=self._options(), version=version)
            data = pa.table(delta.to_pyarrow_dataset().to_table(columns=spec.column_names))
        except TableNotFoundError:
            raise SnapshotUnavailable(f"{spec.id} has not been materialized") from None
        except (DeltaError, OSError) as exc:
            raise SnapshotUnavailable(
                f"{spec.id} version {version} cannot be read: {exc}"
            ) from None
        return spec.conform(data, nullability=False)


class _Watchdog:
    """One thread that interrupts queries past their deadline (no timer thread per query)."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, duckdb.DuckDBPyConnection]] = []
        self._done: set[int] = set()
        self._ids = itertools.count()
        self._cv = threading.Condition()
        threading.Thread(target=self._run, name="broker-query-watchdog", daemon=True).start()

    def watch(self, cursor: duckdb.DuckDBPyConnection, seconds: float) -> int:
        ticket = next(self._ids)
        with self._cv:
            heapq.heappush(self._heap, (time.monotonic() + seconds, ticket, cursor))
            if self._heap[0][1] == ticket:  # sooner than what the thread waits for: wake it
                self._cv.notify()
        return ticket

    def done(self, ticket: int) -> bool:
        """Mark finished; False if the query had already been interrupted."""
        with self._cv:
            if ticket in self._done:
                self._done.discard(ticket)
                return False
            self._done.add(ticket)
            return True

    def clear(self) -> None:
        with self._cv:
            self._heap.clear()
            self._done.clear()

    def _run(self) -> None:
        while True:
            with self._cv:
                while not self._heap:
                    self._cv.wait()
                wait = self._heap[0][0] - time.monotonic()
                if wait > 0:
                    self._cv.wait(wait)
                    continue
                _, ticket, cursor = heapq.heappop(self._heap)
                if ticket in self._done:
                    self._done.discard(ticket)
                    del cursor
                    continue
                self._done.add(ticket)
            cursor.interrupt()
            del cursor  # hold no cursor between deadlines


class SnapshotEngine:
    """Runs compiled queries on DuckDB over cached snapshots."""

    def __init__(self, cache: SnapshotCache, *, threads: int = 1) -> None:
        self.cache = cache
        self._db = duckdb.connect(config={"threads": threads})
        self._local = threading.local()
        self._cursors: list[duckdb.DuckDBPyConnection] = []
        self._cursors_lock = threading.Lock()
        self._watchdog = _Watchdog()

    def _cursor(self) -> duckdb.DuckDBPyConnection:
        cursor = getattr(self._local, "cursor", None)
        if cursor is None:
            cursor = self._db.cursor()
            cursor.execute("SET TimeZone = 'UTC'")
            self._local.cursor = cursor
            with self._cursors_lock:
                self._cursors.append(cursor)
        return cursor

    def run(self, query: CompiledQuery, table: pa.Table, *, timeout_seconds: float) -> pa.Table:
        return self.run_with(
            query.sql, query.params, {RELATION: table}, timeout_seconds=timeout_seconds
        )

    def run_with(
        self,
        sql: str,
        params: Sequence[Any],
        tables: Mapping[str, pa.Table],
        *,
        timeout_seconds: float,
    ) -> pa.Table:
        """Run broker-built ``sql`` with ``tables`` registered under broker-chosen names."""
        cursor = self._cursor()
        for name, table in tables.items():
            cursor.register(name, table)
        ticket = self._watchdog.watch(cursor, timeout_seconds)
        try:
            result = cursor.sql(sql, params=list(params)).to_arrow_table()
        except duckdb.InterruptException:
            raise QueryTimeout(f"query ran past its {timeout_seconds:g} s cap") from None
        finally:
            in_time = self._watchdog.done(ticket)
            for name in tables:
                cursor.unregister(name)
        if not in_time:
            raise QueryTimeout(f"query ran past its {timeout_seconds:g} s cap")
        return pa.table(result)

    def close(self) -> None:
        """Close every thread's cursor and the database, and drop all references to them
        (worker threads outlive the engine; DuckDB objects must not outlive the process)."""
        self._watchdog.clear()
        with self._cursors_lock:
            for cursor in self._cursors:
                cursor.close()
            self._cursors.clear()
        self._local = threading.local()
        self._db.close()
