"""Olist's text columns from numpy arrays: ids, timestamps, money, coordinates, integers.

Vectorized, and zero-copy where the width is fixed. :func:`contract_table` puts the columns
together under a file source's all-text contract schema.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mlsec_platform.catalog.sources import FILE_SOURCES
from mlsec_platform.sample_data.vocab import DAY, HOUR

_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
_TWO_DIGITS = pa.array([f"{i:02d}" for i in range(100)])


def fixed_width(matrix: np.ndarray, valid: np.ndarray | None = None) -> pa.Array:
    """A ``(n, w)`` uint8 matrix of ASCII codes -> arrow string array, without copies."""
    n, width = matrix.shape
    offsets = np.arange(0, (n + 1) * width, width, dtype=np.int32)
    data = pa.py_buffer(np.ascontiguousarray(matrix))
    if valid is None or bool(valid.all()):
        return pa.Array.from_buffers(pa.string(), n, [None, pa.py_buffer(offsets), data])
    bitmap = pa.py_buffer(np.packbits(valid, bitorder="little"))
    nulls = int(n - np.count_nonzero(valid))
    return pa.Array.from_buffers(
        pa.string(), n, [bitmap, pa.py_buffer(offsets), data], null_count=nulls
    )


def hex_ids(rng: np.random.Generator, n: int) -> pa.Array:
    """``n`` random 32-hex lowercase ids (128 random bits each)."""
    raw = np.frombuffer(rng.bytes(16 * n), dtype=np.uint8).reshape(n, 16)
    out = np.empty((n, 32), dtype=np.uint8)
    out[:, 0::2] = _HEX[raw >> 4]
    out[:, 1::2] = _HEX[raw & 15]
    return fixed_width(out)


def _put_digits(matrix: np.ndarray, start: int, values: np.ndarray, width: int) -> None:
    for k in range(width):
        matrix[:, start + width - 1 - k] = 48 + (values // 10**k) % 10


def _timestamp_matrix(seconds: np.ndarray, sep: str, suffix: str = "") -> np.ndarray:
    seconds = np.asarray(seconds, dtype=np.int64)
    n = len(seconds)
    moment = seconds.astype("datetime64[s]")
    month = moment.astype("datetime64[M]")
    year = month.astype("datetime64[Y]").astype(np.int64) + 1970
    month_no = month.astype(np.int64) % 12 + 1
    day = (moment.astype("datetime64[D]") - month.astype("datetime64[D]")).astype(np.int64) + 1
    clock = seconds % DAY
    out = np.empty((n, 19 + len(suffix)), dtype=np.uint8)
    _put_digits(out, 0, year, 4)
    out[:, 4] = out[:, 7] = ord("-")
    _put_digits(out, 5, month_no, 2)
    _put_digits(out, 8, day, 2)
    out[:, 10] = ord(sep)
    _put_digits(out, 11, clock // HOUR, 2)
    out[:, 13] = out[:, 16] = ord(":")
    _put_digits(out, 14, clock // 60 % 60, 2)
    _put_digits(out, 17, clock % 60, 2)
    for k, ch in enumerate(suffix.encode()):
        out[:, 19 + k] = ch
    return out


def timestamps(seconds: np.ndarray, valid: np.ndarray | None = None) -> pa.Array:
    """Epoch seconds -> ``YYYY-MM-DD HH:MM:SS`` text (``None`` where not ``valid``)."""
    return fixed_width(_timestamp_matrix(seconds, " "), valid)


def iso_utc(seconds: np.ndarray) -> np.ndarray:
    """Epoch seconds -> ``YYYY-MM-DDTHH:MM:SSZ`` as a numpy str array."""
    matrix = _timestamp_matrix(seconds, "T", "Z")
    return np.ascontiguousarray(matrix).view("S20").reshape(len(seconds)).astype("U20")


def ints(values: np.ndarray, valid: np.ndarray | None = None) -> pa.Array:
    """Integers -> decimal text (``None`` where not ``valid``)."""
    mask = None if valid is None else ~np.asarray(valid)
    return pc.cast(pa.array(np.asarray(values, dtype=np.int64), mask=mask), pa.string())


def money(cents: np.ndarray) -> pa.Array:
    """Integer cents -> ``"129.90"``."""
    cents = np.asarray(cents, dtype=np.int64)
    whole = pc.cast(pa.array(cents // 100), pa.string())
    return pc.binary_join_element_wise(whole, _TWO_DIGITS.take(pa.array(cents % 100)), ".")


def degrees(values: np.ndarray) -> pa.Array:
    """Coordinates -> text with six decimals (``"-23.550520"``)."""
    micro = np.round(np.asarray(values) * 1e6).astype(np.int64)
    sign = pa.array(np.where(micro < 0, "-", ""))
    whole = pc.cast(pa.array(np.abs(micro) // 1_000_000), pa.string())
    frac = pc.utf8_lpad(pc.cast(pa.array(np.abs(micro) % 1_000_000), pa.string()), 6, "0")
    return pc.binary_join_element_wise(sign, whole, ".", frac, "")  # separator is ""


def text(values: np.ndarray, valid: np.ndarray | None = None) -> pa.Array:
    """Strings -> an arrow string array (``None`` where not ``valid``)."""
    mask = None if valid is None else ~np.asarray(valid)
    return pa.array(values, type=pa.string(), mask=mask)


def pick(vocabulary: pa.Array, index: np.ndarray, valid: np.ndarray | None = None) -> pa.Array:
    """The ``vocabulary`` entry at each index (``None`` where not ``valid``)."""
    index = np.asarray(index, dtype=np.int64)
    if valid is None:
        return vocabulary.take(pa.array(index))
    return vocabulary.take(pa.array(np.where(valid, index, 0), mask=~np.asarray(valid)))


def contract_table(name: str, columns: dict[str, pa.Array]) -> pa.Table:
    """The file source ``name``'s table from its columns, given in the contract's order."""
    schema = FILE_SOURCES[name].raw_schema()
    assert list(columns) == schema.names, (name, list(columns))
    return pa.Table.from_arrays(list(columns.values()), schema=schema)
