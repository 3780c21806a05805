"""Structured queries compiled to parameterized SQL over one pinned snapshot.

Nothing a client sends is ever spliced into SQL text: identifiers are taken from the catalog
(a requested name that is not a catalog column never gets here: the policy refuses it first,
and the compiler checks again), and every value is a bound parameter, converted to the
column's type before binding, so a value that is not of that type is refused with a clear
error instead of being cast by the database.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import pyarrow as pa

from broker_api.errors import RequestRefused
from broker_api.models import Filter, Op, OrderBy
from broker_api.policy.decision import RowFilter
from mlsec_platform.catalog.governance import DatasetSpec


class QueryError(RequestRefused, ValueError):
    """The request is well formed but cannot be compiled (unknown column, wrong value type)."""

    http_status = 400


@dataclass(frozen=True)
class CompiledQuery:
    sql: str
    params: tuple[Any, ...]
    columns: tuple[str, ...]

    @property
    def where(self) -> str:
        return self.sql.partition(" WHERE ")[2].partition(" ORDER BY ")[0]


_COMPARE = {Op.EQ: "=", Op.NE: "<>", Op.LT: "<", Op.LTE: "<=", Op.GT: ">", Op.GTE: ">="}


def quote(spec: DatasetSpec, name: str) -> str:
    """A catalog column as a quoted identifier; anything else is refused."""
    if name not in spec.column_names:
        raise QueryError(f"{spec.id} has no column {name!r}")
    return f'"{name}"'


def coerce(spec: DatasetSpec, column: str, value: Any) -> Any:
    """``value`` as the Python type of ``column``'s Arrow type, or QueryError."""
    t = spec.column(column).type
    try:
        if pa.types.is_string(t) or pa.types.is_large_string(t):
            if not isinstance(value, str):
                raise TypeError
            return value
        if pa.types.is_boolean(t):
            if not isinstance(value, bool):
                raise TypeError
            return value
        if pa.types.is_integer(t):
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError
            return _within(column, t, value, *_integer_range(t))
        if pa.types.is_floating(t):
            if isinstance(value, bool) or not isinstance(value, (int, float, Decimal)):
                raise TypeError
            return float(value)  # OverflowError past the double range: refused below
        if pa.types.is_decimal(t):
            if isinstance(value, bool) or not isinstance(value, (int, float, str, Decimal)):
                raise TypeError
            number = Decimal(str(value))
            if not number.is_finite():
                raise TypeError
            bound = Decimal(10) ** (t.precision - t.scale)
            return _within(column, t, number, -bound, bound, inclusive=False)
        if pa.types.is_date(t):
            if isinstance(value, datetime):
                raise TypeError
            return value if isinstance(value, date) else date.fromisoformat(value)
        if pa.types.is_timestamp(t):
            moment = value if isinstance(value, datetime) else datetime.fromisoformat(value)
            if moment.tzinfo is None:
                raise QueryError(f"filter value for {column!r} needs a time zone (e.g. Z)")
            return moment.astimezone(UTC)  # OverflowError past the year 9999: refused below
    except OverflowError:
        raise QueryError(f"filter value for {column!r} is outside the range of {t}") from None
    except (TypeError, ValueError, InvalidOperation) as exc:
        if isinstance(exc, QueryError):
            raise
        raise QueryError(f"filter value for {column!r} is not a {t}") from None
    raise QueryError(f"cannot filter on {column!r} of type {t}")


def _integer_range(t: pa.DataType) -> tuple[int, int]:
    """The smallest and largest value of an Arrow integer type."""
    if pa.types.is_unsigned_integer(t):
        return 0, 2**t.bit_width - 1
    return -(2 ** (t.bit_width - 1)), 2 ** (t.bit_width - 1) - 1


def _within(column: str, t: pa.DataType, value: Any, low: Any, high: Any, *, inclusive=True):
    """``value`` when the column's type can hold it: a value no row can have is refused with
    a reason, not handed to the engine (which fails past 128 bits, a server error)."""
    inside = low <= value <= high if inclusive else low < value < high
    if not inside:
        raise QueryError(f"filter value for {column!r} is outside the range of {t}")
    return value


def _condition(spec: DatasetSpec, f: Filter, params: list[Any]) -> str:
    col = quote(spec, f.column)
    if f.op in _COMPARE:
        params.append(coerce(spec, f.column, f.value))
        return f"{col} {_COMPARE[f.op]} ?"
    if f.op is Op.IN:
        values = [coerce(spec, f.column, v) for v in f.value]  # type: ignore[union-attr]
        params.extend(values)
        return f"{col} IN ({', '.join('?' * len(values))})"
    if f.op is Op.BETWEEN:
        low, high = f.value  # type: ignore[misc]
        params.extend((coerce(spec, f.column, low), coerce(spec, f.column, high)))
        return f"{col} BETWEEN ? AND ?"
    if f.op is Op.IS_NULL:
        return f"{col} IS NULL" if f.value else f"{col} IS NOT NULL"
    if f.op is Op.PREFIX:
        params.append(coerce(spec, f.column, f.value))
        if not isinstance(params[-1], str):
            raise QueryError(f"'prefix' applies to text columns, not {f.column!r}")
        return f"starts_with({col}, ?)"
    raise QueryError(f"unsupported operator {f.op!r}")


def compile_query(
    spec: DatasetSpec,
    columns: Sequence[str],
    filters: Sequence[Filter],
    order_by: Sequence[OrderBy],
    *,
    relation: str,
    row_filter: RowFilter | None,
    limit: int,
    offset: int = 0,
) -> CompiledQuery:
    """``SELECT <columns> FROM <relation> WHERE <row scope> AND <filters> ORDER BY ... LIMIT``.

    ``relation`` is a name the broker registered itself. The order always ends with the
    dataset key, so pages are a stable partition of the snapshot.
    """
    params: list[Any] = []
    conditions: list[str] = []
    if row_filter is not None:
        if not row_filter.values:
            conditions.append("FALSE")
        else:
            conditions.append(
                f"{quote(spec, row_filter.column)} IN ({', '.join('?' * len(row_filter.values))})"
            )
            params.extend(row_filter.values)
    conditions.extend(_condition(spec, f, params) for f in filters)
    ordering = [f"{quote(spec, o.column)} {o.direction.value.upper()} NULLS LAST" for o in order_by]
    named = {o.column for o in order_by}
    ordering.extend(f"{quote(spec, k)} ASC NULLS LAST" for k in spec.key if k not in named)
    select = ", ".join(quote(spec, c) for c in columns)
    sql = f"SELECT {select} FROM {relation}"
    if conditions:
        sql += " WHERE " + " AND ".join(f"({c})" for c in conditions)
    sql += f" ORDER BY {', '.join(ordering)} LIMIT ? OFFSET ?"
    params.extend((limit, offset))
    return CompiledQuery(sql, tuple(params), tuple(columns))
