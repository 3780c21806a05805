"""The broker's answers as pandas DataFrames: its column order and types, and what it says
about the rows (lineage, policy, masks, request ids) in ``DataFrame.attrs``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

import pandas as pd

#: Masks whose output is text whatever the column's type (left as strings in frames).
_TEXT_MASKS = frozenset({"redact", "partial_email", "last_digits", "keyed_hash"})


def _convert(values: pd.Series, type_: str, mask: str | None) -> pd.Series:
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
            return values.map(lambda v: None if v is None else Decimal(str(v)))
    except (ValueError, TypeError, OverflowError, InvalidOperation):
        return values
    return values


def to_frame(
    columns: Sequence[Mapping[str, Any]], rows: Sequence[Mapping[str, Any]]
) -> pd.DataFrame:
    """Rows (dicts) as a DataFrame with the response's column order and types."""
    names = [c["name"] for c in columns]
    frame = pd.DataFrame.from_records(list(rows), columns=names)
    for c in columns:
        frame[c["name"]] = _convert(frame[c["name"]], str(c.get("type", "")), c.get("mask"))
    return frame


def masks_of(columns: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """``{column: mask}`` of the masked columns of an answer."""
    return {c["name"]: c["mask"] for c in columns if c.get("mask") not in (None, "none")}


def answers_frame(
    answers: Sequence[Mapping[str, Any]], rows: str, correlation_id: str, **attrs: Any
) -> pd.DataFrame:
    """The ``rows`` of the answers of one call (pages, chunks) as one frame.

    ``attrs``: ``lineage``, ``policy`` and ``masks`` of the first answer (the later ones
    describe the same read), the ``request_ids`` of all, ``correlation_id`` and ``attrs``."""
    first = answers[0]
    frame = to_frame(first["columns"], [row for answer in answers for row in answer[rows]])
    frame.attrs.update(
        lineage=first.get("lineage"),
        policy=first.get("policy"),
        masks=masks_of(first["columns"]),
        request_ids=[answer.get("request_id") for answer in answers],
        correlation_id=correlation_id,
        **attrs,
    )
    return frame
