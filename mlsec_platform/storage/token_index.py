"""Which tokens the vault has for a batch's values: their index looked up in the vault's index.

The lookup is a hash join in DuckDB of the batch's distinct index values against the vault's
(index, token) columns (4.7M against 4.7M: under a second). Those columns are kept per process
at the version last read or written (:func:`known_tokens`), so the assets of one run read a
domain's index once; a Delta version is immutable, so a hit is exact.
"""

from __future__ import annotations

import threading

import duckdb
import numpy as np
import pyarrow as pa
from deltalake import DeltaTable

from mlsec_platform.privacy.tokens import INDEX_BYTES

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


def match_tokens(index: np.ndarray, known: pa.Table) -> tuple[np.ndarray, pa.Array]:
    """Which rows of ``index`` the vault knows, and the tokens (null where not)."""
    n = len(index)
    found = np.zeros(n, dtype=bool)
    if known.num_rows == 0:
        return found, pa.nulls(n, pa.string())
    wanted = pa.table({"i": pa.array(np.arange(n, dtype=np.int64)), "index": binary_rows(index)})
    con = duckdb.connect()
    try:
        con.register("wanted", wanted)
        con.register("known", known)
        hits = con.sql(
            'SELECT w.i, k.token FROM wanted w JOIN known k ON w."index" = k."index"'
        ).to_arrow_table()
    finally:
        con.close()
    positions = hits.column("i").to_numpy()
    tokens = hits.column("token")
    if len(np.unique(positions)) != len(positions):
        # Two tokens for one value (only a mint that bypassed the lock makes that): the
        # smallest wins, the same in every run.
        hits = hits.sort_by([("i", "ascending"), ("token", "ascending")])
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
