"""Column masks: what a reader below a column's sensitivity gets instead of its values.

The policy engine decides which columns are masked and how (the catalog's :class:`Mask` of each
column); :class:`Masker` applies that to an Arrow table before it leaves the broker, vectorised
with ``pyarrow.compute``. Every mask keeps nulls null and keeps the column's type, which
:func:`masked_type` reports for the response's column list. A mask/type pair not listed below
raises :class:`UnsupportedMask`: nothing is ever returned unmasked because a mask did not fit.

======================  ===========================================  =========================
mask                    result                                       types
======================  ===========================================  =========================
``redact``              ``"***"`` (strings); null (other types)      any
``partial_email``       ``"***@<domain>"``; ``"***"`` without ``@``  strings
``last_digits``         ``"***"`` + last 4 characters; ``"***"``     strings
                        when the value has 4 characters or fewer
``keyed_hash``          ``"h:"`` + 32 hex of HMAC-SHA256(key, utf-8  strings
                        value): equal values hash equal per key
``null``                null                                         any
``round``               0 decimal places; integers to the nearest    decimals, floats, integers
                        10 (half to even)
``truncate_date``       first day of the month (in the column's      date32, timestamps
                        time zone for zoned timestamps)
======================  ===========================================  =========================
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

import pyarrow as pa
import pyarrow.compute as pc

from mlsec_platform.catalog.governance import Mask
from mlsec_platform.errors import MlsecError

#: What every redacted string becomes.
REDACTED = "***"
#: Prefix of keyed hashes, so they are never mistaken for (or joined with) clear values.
HASH_PREFIX = "h:"
#: Hex characters of the HMAC kept (128 bits).
HASH_HEX_CHARS = 32
#: The shortest keyed-hash key accepted (the HMAC-SHA256 output size).
MIN_KEY_BYTES = 32
#: Characters ``last_digits`` keeps; values no longer than this are fully redacted.
LAST_DIGITS = 4

_BLOCK = 64  # SHA-256 block size, for HMAC's padded keys (RFC 2104)


# Kernel options and scalars built once (building them per call costs more than the kernels).
_STRINGS = {
    t: (pa.scalar(REDACTED, t), pa.scalar("", t), pa.scalar(None, t))
    for t in (pa.string(), pa.large_string())
}
_EMAIL = pc.ReplaceSubstringOptions(pattern=r"(?s)^.*@", replacement=REDACTED + "@")
_AT = pc.MatchSubstringOptions(pattern="@")
_TAIL = pc.SliceOptions(start=-LAST_DIGITS)
_ROUND = pc.RoundOptions(ndigits=0, round_mode="half_to_even")
_ROUND_INTEGER = pc.RoundOptions(ndigits=-1, round_mode="half_to_even")
_MONTH = pc.RoundTemporalOptions(unit="month")


class UnsupportedMask(MlsecError, TypeError):
    """A mask that cannot be applied to a column's type (so the column is never returned).
    A catalog fault, not the caller's: answered as an internal error."""

    http_status = 500


def _supports(arrow_type: pa.DataType, mask: Mask) -> bool:
    t = arrow_type
    if mask in (Mask.REDACT, Mask.NULL):
        return True
    if mask in (Mask.PARTIAL_EMAIL, Mask.LAST_DIGITS, Mask.KEYED_HASH):
        return t in _STRINGS
    if mask is Mask.ROUND:
        return pa.types.is_decimal(t) or pa.types.is_integer(t) or t in (pa.float32(), pa.float64())
    if mask is Mask.TRUNCATE_DATE:
        return pa.types.is_date32(t) or pa.types.is_timestamp(t)
    return False  # Mask.NONE is not a mask


def masked_type(arrow_type: pa.DataType, mask: Mask) -> pa.DataType:
    """The type of a column of ``arrow_type`` once ``mask`` is applied (every mask keeps the
    type); raises UnsupportedMask for a pair that cannot be masked."""
    mask = Mask(mask)
    if not _supports(arrow_type, mask):
        raise UnsupportedMask(f"mask {mask.value!r} cannot be applied to type {arrow_type}")
    return arrow_type


class Masker:
    """Applies masks to tables. ``hash_key`` keys ``keyed_hash``: it is a secret read at run
    time (from Vault), at least 32 bytes, and hashes differ between keys."""

    __slots__ = ("_inner", "_outer")

    def __init__(self, hash_key: bytes) -> None:
        if not isinstance(hash_key, bytes):
            raise TypeError("the keyed-hash key must be bytes")
        if len(hash_key) < MIN_KEY_BYTES:
            raise ValueError(f"the keyed-hash key must be at least {MIN_KEY_BYTES} bytes")
        # HMAC (RFC 2104) with its padded-key states computed once: copying them per value is
        # several times faster than a new hmac object per value.
        key = hash_key if len(hash_key) <= _BLOCK else hashlib.sha256(hash_key).digest()
        key = key.ljust(_BLOCK, b"\0")
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in key))
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in key))

    def __repr__(self) -> str:
        return "Masker(hash_key=<secret>)"

    def apply(self, table: pa.Table, masks: Mapping[str, Mask]) -> pa.Table:
        """``table`` with each column named in ``masks`` masked. A mask for a column the table
        does not have exactly once, or that does not fit the column's type, raises."""
        for name, value in masks.items():
            mask = Mask(value)
            index = table.schema.get_field_index(name)
            if index < 0:
                raise KeyError(f"cannot mask {name!r}: not exactly one such column in the table")
            column_field = table.schema.field(index)
            expected = masked_type(column_field.type, mask)
            masked = self._mask(table.column(index), mask)
            if masked.type != expected:  # a pyarrow change must not slip through unnoticed
                raise UnsupportedMask(f"mask {mask.value!r} gave {masked.type}, not {expected}")
            nullable = column_field.nullable or masked.null_count > 0
            table = table.set_column(
                index, column_field.with_type(expected).with_nullable(nullable), masked
            )
        return table

    # ----------------------------------------------------------------------------------------

    def _mask(self, column: pa.ChunkedArray, mask: Mask) -> pa.ChunkedArray | pa.Array:
        t = column.type
        strings = _STRINGS.get(t)
        if mask is Mask.NULL or (mask is Mask.REDACT and strings is None):
            return pa.nulls(len(column), t)
        if mask is Mask.KEYED_HASH:
            return self._hash_column(column)
        if mask is Mask.ROUND:
            options = _ROUND_INTEGER if pa.types.is_integer(t) else _ROUND
            return pc.call_function("round", [column], options)
        if mask is Mask.TRUNCATE_DATE:
            return pc.call_function("floor_temporal", [column], _MONTH)
        if strings is None:
            raise UnsupportedMask(f"mask {mask.value!r} cannot be applied to type {t}")
        redacted, empty, null = strings
        if mask is Mask.REDACT:
            return pc.if_else(pc.is_valid(column), redacted, null)
        if mask is Mask.PARTIAL_EMAIL:
            # Greedy up to the last "@"; (?s) so a newline cannot end the match early. (One
            # regex with a capture for both cases is ~2x slower than this and the if_else.)
            shown = pc.call_function("replace_substring_regex", [column], _EMAIL)
            return pc.if_else(pc.call_function("match_substring", [column], _AT), shown, redacted)
        if mask is Mask.LAST_DIGITS:
            tail = pc.call_function("utf8_slice_codeunits", [column], _TAIL)
            shown = pc.binary_join_element_wise(redacted, tail, empty)
            return pc.if_else(pc.greater(pc.utf8_length(column), LAST_DIGITS), shown, redacted)
        raise UnsupportedMask(f"mask {mask.value!r} cannot be applied to type {t}")

    def _hash_column(self, column: pa.ChunkedArray) -> pa.ChunkedArray:
        # HMAC has no Arrow kernel: one loop per chunk over the precomputed pad states.
        inner, outer = self._inner.copy, self._outer.copy
        chunks = []
        for chunk in column.chunks:
            hashed: list[str | None] = []
            add = hashed.append
            for value in chunk.to_pylist():
                if value is None:
                    add(None)
                    continue
                i = inner()
                i.update(value.encode())
                o = outer()
                o.update(i.digest())
                add(HASH_PREFIX + o.hexdigest()[:HASH_HEX_CHARS])
            chunks.append(pa.array(hashed, column.type))
        return pa.chunked_array(chunks, column.type)
