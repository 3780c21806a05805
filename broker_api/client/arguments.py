"""The SDK's Python arguments as the broker's wire JSON: filters, orderings, query bodies and
point-in-time entity rows."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any

import numpy as np
import pandas as pd

_OP_ALIASES = {"==": "eq", "=": "eq", "!=": "ne", "<": "lt", "<=": "lte", ">": "gt", ">=": "gte"}

#: A filter: ``{"column", "op", "value"}``, ``(column, op, value)`` or ``(column, "is_null")``.
FilterSpec = Mapping[str, Any] | Sequence[Any]
#: An ordering: ``"col"``, ``"-col"`` (descending), ``(col, "desc")`` or ``{"column", ...}``.
OrderSpec = str | Mapping[str, Any] | Sequence[str]


def jsonable(value: Any) -> Any:
    """``value`` as plain JSON: dates and datetimes in ISO 8601, Decimals and numpy scalars as
    numbers, tuples and sets as lists, enums as their values."""
    if isinstance(value, Enum):
        return jsonable(value.value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        integral = value.is_finite() and value == value.to_integral_value()
        return int(value) if integral else float(value)
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    return value


def normalize_filter(spec: FilterSpec) -> dict[str, Any]:
    """One filter as the wire's ``{"column", "op", "value"}``; ops may be written ``>`` etc."""
    if isinstance(spec, Mapping):
        out = dict(spec)
    elif isinstance(spec, Sequence) and not isinstance(spec, str):
        if len(spec) == 3:
            out = {"column": spec[0], "op": spec[1], "value": spec[2]}
        elif len(spec) == 2 and str(spec[1]) == "is_null":
            out = {"column": spec[0], "op": "is_null", "value": True}
        else:
            raise ValueError(f"a filter is (column, op, value), got {spec!r}")
    else:
        raise TypeError(f"a filter is a dict or a (column, op, value) tuple, got {spec!r}")
    op = str(jsonable(out.get("op")))
    out["op"] = _OP_ALIASES.get(op, op)
    if "value" in out:
        out["value"] = jsonable(out["value"])
    return out


def normalize_order(spec: OrderSpec) -> dict[str, Any]:
    """One ordering as the wire's ``{"column", "direction"}``."""
    if isinstance(spec, str):
        if spec.startswith("-"):
            return {"column": spec[1:], "direction": "desc"}
        return {"column": spec.removeprefix("+"), "direction": "asc"}
    if isinstance(spec, Mapping):
        return jsonable(spec)
    if isinstance(spec, Sequence) and len(spec) == 2:
        return {"column": spec[0], "direction": str(jsonable(spec[1])).lower()}
    raise TypeError(f"an ordering is 'col', '-col', (col, direction) or a dict, got {spec!r}")


def names(values: str | Iterable[str], what: str) -> list[str]:
    """A list of names; a lone string is one name, not its characters."""
    if isinstance(values, str):
        return [values]
    out = list(values)
    if not all(isinstance(v, str) for v in out):
        raise TypeError(f"{what} must be strings, got {out!r}")
    return out


def query_body(
    dataset: str,
    columns: str | Sequence[str],
    *,
    filters: Sequence[FilterSpec] | None = None,
    order_by: OrderSpec | Sequence[OrderSpec] | None = None,
    limit: int = 100,
    version: int | None = None,
    reveal: Mapping[str, Any] | Any | None = None,
) -> dict[str, Any]:
    """The ``QueryRequest`` JSON for these arguments (without a cursor)."""
    if isinstance(filters, Mapping | str):
        raise TypeError("filters is a list of filters")
    body: dict[str, Any] = {
        "dataset": dataset,
        "columns": names(columns, "columns"),
        "limit": int(limit),
    }
    if filters:
        body["filters"] = [normalize_filter(f) for f in filters]
    if order_by:
        orders = [order_by] if isinstance(order_by, str | Mapping) else list(order_by)
        body["order_by"] = [normalize_order(o) for o in orders]
    if version is not None:
        body["version"] = int(version)
    if reveal is not None:
        dump = getattr(reveal, "model_dump", None)
        body["reveal"] = dump(mode="json") if callable(dump) else jsonable(dict(reveal))
    return body


def entity_rows(entities: pd.DataFrame) -> list[dict[str, str]]:
    """``entities``' ``customer_token`` and ``event_timestamp`` as wire rows (ISO 8601)."""
    stamps = pd.to_datetime(entities["event_timestamp"])
    if stamps.isna().any() or entities["customer_token"].isna().any():
        raise ValueError("entities has missing customer_token or event_timestamp values")
    return [
        {"customer_token": str(token), "event_timestamp": stamp.isoformat()}
        for token, stamp in zip(entities["customer_token"], stamps, strict=True)
    ]
