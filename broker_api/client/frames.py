"""The broker's answers as pandas DataFrames: its column order and types, and what it says
about the rows (lineage, policy, masks, request ids) in ``DataFrame.attrs``."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any, Literal, get_args

import pandas as pd
import pyarrow as pa

#: Masks whose output is text whatever the column's type (left as strings in frames).
_TEXT_MASKS = frozenset({"redact", "partial_email", "last_digits", "keyed_hash"})


#: How decimal columns come back: ``"arrow"`` exact (an Arrow decimal dtype, still numeric:
#: sums, comparisons), or ``"float"`` (float64, for libraries that want plain floats).
Decimals = Literal["arrow", "float"]
_DECIMAL = re.compile(r"decimal(?:32|64|128|256)?\((\d+),\s*(-?\d+)\)")


def check_decimals(decimals: str) -> None:
    if decimals not in get_args(Decimals):
        raise ValueError(f"decimals is one of {get_args(Decimals)}, got {decimals!r}")


def _decimal(values: pd.Series, type_: str, decimals: Decimals) -> pd.Series:
    """Decimal text (the broker sends decimals as exact strings) as numbers."""
    if decimals == "float":
        return values.astype("float64")
    match = _DECIMAL.fullmatch(type_)
    if match is None:
        raise ValueError(f"not a decimal type: {type_}")
    precision, scale = int(match[1]), int(match[2])
    arrow = pa.decimal128(precision, scale) if precision <= 38 else pa.decimal256(precision, scale)
    exact = [None if v is None or v != v else Decimal(str(v)) for v in values]
    return pd.Series(pa.array(exact, arrow), dtype=pd.ArrowDtype(arrow), index=values.index)


def _convert(
    values: pd.Series, type_: str, mask: str | None, decimals: Decimals = "arrow"
) -> pd.Series:
    """``values`` (as JSON decoded them) in a dtype fitting the Arrow type name ``type_``;
    unchanged when the mask makes them text or they do not convert."""
    if mask in _TEXT_MASKS:
        return values
    t = type_.lower()
    try:
        if t.startswith("timestamp"):
            return pd.to_datetime(values, utc="tz=" in t, format="ISO8601")
        if t.startswith("date"):
            return pd.to_datetime(values, format="ISO8601").dt.date
        if t.startswith(("int", "uint")):
            return values.astype("Int64")
        if t in ("bool", "boolean"):
            return values.astype("boolean")
        if t in ("float", "double", "halffloat") or t.startswith("float"):
            return values.astype("float64")
        if t.startswith("decimal"):
            return _decimal(values, t, decimals)
    except (ValueError, TypeError, OverflowError, InvalidOperation, pa.ArrowInvalid):
        return values
    return values


def to_frame(
    columns: Sequence[Mapping[str, Any]],
    rows: Sequence[Mapping[str, Any]],
    decimals: Decimals = "arrow",
) -> pd.DataFrame:
    """Rows (dicts) as a DataFrame with the response's column order and types."""
    names = [c["name"] for c in columns]
    frame = pd.DataFrame.from_records(list(rows), columns=names)
    for c in columns:
        frame[c["name"]] = _convert(
            frame[c["name"]], str(c.get("type", "")), c.get("mask"), decimals
        )
    return frame


def masks_of(columns: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """``{column: mask}`` of the masked columns of an answer."""
    return {c["name"]: c["mask"] for c in columns if c.get("mask") not in (None, "none")}


def answers_frame(
    answers: Sequence[Mapping[str, Any]],
    rows: str,
    correlation_id: str,
    decimals: Decimals = "arrow",
    **attrs: Any,
) -> pd.DataFrame:
    """The ``rows`` of the answers of one call (pages, chunks) as one frame.

    ``attrs``: ``lineage``, ``policy`` and ``masks`` of the first answer (the later ones
    describe the same read), the ``request_ids`` of all, ``correlation_id`` and ``attrs``."""
    first = answers[0]
    frame = to_frame(
        first["columns"], [row for answer in answers for row in answer[rows]], decimals
    )
    frame.attrs.update(
        lineage=first.get("lineage"),
        policy=first.get("policy"),
        masks=masks_of(first["columns"]),
        request_ids=[answer.get("request_id") for answer in answers],
        correlation_id=correlation_id,
        **attrs,
    )
    return frame
