"""Which tokens the vault has for a batch's values: their index looked up in the vault's index.

The lookup is a hash join in DuckDB of the batch's distinct index values against the vault's
(index, token) columns (4.7M against 4.7M: under a second). Those columns are kept per process
at the version last read or written (:func:`known_tokens`), so the assets of one run read a
domain's index once; a Delta version is immutable, so a hit is exact.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator

import duckdb
import numpy as np
import pyarrow as pa
from deltalake import DeltaTable

from mlsec_platform.privacy.tokens import INDEX_BYTES, token_array
from mlsec_platform.storage.token_tables import ENTRIES_SCHEMA

#: The columns of ``entries`` a lookup needs.
KEYED_SCHEMA = pa.schema([ENTRIES_SCHEMA.field("index"), ENTRIES_SCHEMA.field("token")])

#: uri -> (version, its index and token columns).
_INDEX_CACHE: dict[str, tuple[int, pa.Table]] = {}
_CACHE_LOCK = threading.Lock()


def clear_index_cache() -> None:
    with _CACHE_LOCK:
        _INDEX_CACHE.clear()


def known_tokens(uri: str, table: DeltaTable | None) -> tuple[int | None, pa.Table]:
    """The (index, token) columns of ``table`` (the vault at ``uri``) at its version."""
    if table is None:
        return None, pa.table(
            {"index": pa.array([], pa.binary()), "token": pa.array([], pa.string())}
        )
    version = table.version()
    with _CACHE_LOCK:
        cached = _INDEX_CACHE.get(uri)
    if cached is not None and cached[0] == version:
        return cached
    known = pa.table(table.to_pyarrow_dataset().to_table(columns=["index", "token"]))
    with _CACHE_LOCK:
        _INDEX_CACHE[uri] = (version, known)
    return version, known


def remember_appended(uri: str, version: int, rows: pa.Table) -> None:
    """``rows`` were appended to the vault at ``uri`` as ``version``: the cached index grows
    with them if it held the version before."""
    with _CACHE_LOCK:
        before = _INDEX_CACHE.get(uri)
        if before is not None and before[0] == version - 1:
            grown = pa.concat_tables([before[1], rows.select(["index", "token"])])
            _INDEX_CACHE[uri] = (version, grown)


def binary_rows(matrix: np.ndarray) -> pa.Array:
    """An ``(n, 32)`` byte matrix as a binary array (32 bytes a value)."""
    n = len(matrix)
    offsets = np.arange(0, INDEX_BYTES * (n + 1), INDEX_BYTES, dtype=np.int32)
    data = pa.py_buffer(np.ascontiguousarray(matrix).reshape(-1))
    return pa.Array.from_buffers(pa.binary(), n, [None, pa.py_buffer(offsets), data])


def keyed_rows(index: np.ndarray, tokens: np.ndarray) -> pa.Table:
    """``(n, 32)`` index and ``(n, 26)`` token matrices as the rows a lookup reads."""
    return pa.table([binary_rows(index), token_array(tokens)], schema=KEYED_SCHEMA)


def index_rows(column: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A binary column of 32-byte index values as an ``(n, 32)`` byte matrix."""
    chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
    parts = []
    for chunk in chunks:
        chunk = chunk.cast(pa.binary())
        _, offsets, data = chunk.buffers()
        bounds = np.frombuffer(offsets, np.int32)[chunk.offset : chunk.offset + len(chunk) + 1]
        if len(chunk) and not (np.diff(bounds) == INDEX_BYTES).all():
            raise ValueError("a vault index value is not 32 bytes long")
        start = int(bounds[0]) if len(chunk) else 0
        raw = np.frombuffer(data, np.uint8)[start : start + len(chunk) * INDEX_BYTES]
        parts.append(raw.reshape(-1, INDEX_BYTES))
    return np.concatenate(parts) if parts else np.zeros((0, INDEX_BYTES), np.uint8)


def _head(rows: np.ndarray) -> pa.Array:
    """The first 8 bytes of each index value as an integer: the join key (the full 32 bytes
    are compared afterwards, so a shared head never matches two values)."""
    return pa.array(np.ascontiguousarray(rows[:, :8]).view(np.uint64).ravel())


def match_tokens(index: np.ndarray, known: pa.Table) -> tuple[np.ndarray, pa.Array]:
    """Which rows of ``index`` the vault knows, and the tokens (null where not)."""
    n = len(index)
    found = np.zeros(n, dtype=bool)
    if known.num_rows == 0:
        return found, pa.nulls(n, pa.string())
    known_rows = index_rows(known.column("index"))
    wanted = pa.table({"i": pa.array(np.arange(n, dtype=np.int64)), "head": _head(index)})
    heads = pa.table({"j": pa.array(np.arange(len(known_rows))), "head": _head(known_rows)})
    con = duckdb.connect()
    try:
        con.register("wanted", wanted)
        con.register("heads", heads)
        hits = con.sql(
            "SELECT w.i, h.j FROM wanted w JOIN heads h ON w.head = h.head"
        ).to_arrow_table()
    finally:
        con.close()
    positions, rows = hits.column("i").to_numpy(), hits.column("j").to_numpy()
    words = np.ascontiguousarray(index).view(np.uint64)  # compared 8 bytes at a time
    same = (words[positions] == known_rows.view(np.uint64)[rows]).all(axis=1)
    positions, rows = positions[same], rows[same]
    tokens = known.column("token").take(pa.array(rows))
    if np.bincount(positions, minlength=n).max(initial=0) > 1:
        # Two tokens for one value (only a mint that bypassed the lock makes that): the
        # smallest wins, the same in every run.
        hits = pa.table({"i": positions, "token": tokens}).sort_by(
            [("i", "ascending"), ("token", "ascending")]
        )
        positions = hits.column("i").to_numpy()
        first = np.concatenate([[True], positions[1:] != positions[:-1]])
        positions, tokens = positions[first], hits.column("token").filter(pa.array(first))
    found[positions] = True
    return found, put_tokens(pa.nulls(n, pa.string()), positions, tokens)


def put_tokens(
    tokens: pa.Array, positions: np.ndarray, values: pa.Array | pa.ChunkedArray
) -> pa.Array:
    """``tokens`` with ``values`` put at ``positions``."""
    n = len(tokens)
    source = np.full(n, -1, dtype=np.int64)
    source[positions] = np.arange(len(positions))
    values = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    merged = pa.concat_arrays([values.cast(pa.string()), tokens.cast(pa.string())])
    take = np.where(source >= 0, source, len(values) + np.arange(n))
    return merged.take(pa.array(take))


def string_chunks(column: pa.Array | pa.ChunkedArray) -> list[pa.Array]:
    """The chunks of ``column`` as plain strings (one for an Array)."""
    column = column.cast(pa.string())
    return column.chunks if isinstance(column, pa.ChunkedArray) else [column]


def rechunked(
    batches: Iterable[tuple[pa.Array, pa.Array | None]], size: int
) -> Iterator[tuple[pa.Array, pa.Array | None]]:
    """``(values, index)`` batches regrouped into chunks of exactly ``size`` rows (the last one
    shorter), pulling no batch before the chunk it belongs to is wanted: at most one chunk and
    one batch are held at a time. ``index`` is None in every batch or in none (None: not
    computed yet; the chunk's is None too)."""
    if size < 1:
        raise ValueError("a chunk holds at least one value")
    held: list[tuple[pa.Array, pa.Array | None]] = []
    count = 0
    for values, index in batches:
        start = 0
        while start < len(values):
            take = min(size - count, len(values) - start)
            part = None if index is None else index.slice(start, take)
            held.append((values.slice(start, take), part))
            count, start = count + take, start + take
            if count == size:
                yield _joined(held)
                held, count = [], 0
    if count:
        yield _joined(held)


def _joined(parts: list[tuple[pa.Array, pa.Array | None]]) -> tuple[pa.Array, pa.Array | None]:
    values = pa.chunked_array([p[0].cast(pa.string()) for p in parts], pa.string())
    if any(p[1] is None for p in parts):
        return values.combine_chunks(), None
    index = pa.chunked_array([p[1].cast(pa.binary()) for p in parts], pa.binary())
    return values.combine_chunks(), index.combine_chunks()


def entry_batches(
    keyed: pa.Table, parts: Iterable[tuple[int, int, pa.Array]], key_id: str
) -> pa.RecordBatchReader:
    """Rows of ``entries``: ``keyed`` (index, token) with each part's ciphertexts (``start,
    end, ciphertexts`` of those rows) and ``key_id``, a part at a time as ``parts`` yields."""
    index, token = (keyed.column(c).combine_chunks() for c in ("index", "token"))

    def batches():
        for a, b, ciphertexts in parts:
            columns = [index.slice(a, b - a), token.slice(a, b - a), ciphertexts]
            yield pa.record_batch([*columns, pa.repeat(key_id, b - a)], schema=ENTRIES_SCHEMA)

    return pa.RecordBatchReader.from_batches(ENTRIES_SCHEMA, batches())
