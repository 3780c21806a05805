"""Tables a run has just committed, kept in memory for the steps of the same run that read them.

A curated run writes a Silver table and, a step later, reads it back for Gold; Gold is read back
for the features and the warehouse. The IO manager remembers each table it committed, keyed by
table URI and the Delta version its commit produced; a reader that resolves the same URI to the
same version gets those rows without fetching and decoding the files again. A version is
immutable, so this can never serve other data than the commit holds: any other commit in
between gives another version, which is read from storage as usual.

There is one cache per identity and object store in a process (Dagster hands each step its
own copy of a resource, so the cache cannot live on the resource object itself); a lake
resource reaches only its own identity's, and empties it when its run ends. It is bounded in
bytes (least recently used out first); a table larger than the bound is not kept.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

import pyarrow as pa


class CommittedTables:
    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._tables: OrderedDict[tuple[str, int], pa.Table] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._tables)

    @property
    def nbytes(self) -> int:
        return self._bytes

    def remember(self, uri: str, version: int, table: pa.Table) -> None:
        """Keep ``table`` as the contents of ``uri`` at ``version``; older versions of it go."""
        size = table.nbytes
        with self._lock:
            for key in [k for k in self._tables if k[0] == uri]:
                self._bytes -= self._tables.pop(key).nbytes
            if size > self.max_bytes:
                return
            while self._tables and self._bytes + size > self.max_bytes:
                _, evicted = self._tables.popitem(last=False)
                self._bytes -= evicted.nbytes
            self._tables[(uri, version)] = table
            self._bytes += size

    def get(self, uri: str, version: int | None) -> pa.Table | None:
        with self._lock:
            table = self._tables.get((uri, version)) if version is not None else None
            if table is not None:
                self._tables.move_to_end((uri, version))
            return table

    def clear(self) -> None:
        with self._lock:
            self._tables.clear()
            self._bytes = 0


_CACHES: dict[str, CommittedTables] = {}
_CACHES_LOCK = threading.Lock()


def committed_tables(owner: str, max_bytes: int) -> CommittedTables:
    """The process's cache for ``owner`` (an identity at one object store)."""
    with _CACHES_LOCK:
        cache = _CACHES.get(owner)
        if cache is None:
            cache = _CACHES[owner] = CommittedTables(max_bytes)
        cache.max_bytes = max_bytes
        return cache
