"""Quasi-identifiers made coarser: each catalog ``Generalisation`` as one DuckDB expression.

A catalog column tagged ``generalised=...`` with ``from_column=...`` gets its values from here,
computed over the clear column the Silver transform outputs; nothing else writes them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import duckdb
import pyarrow as pa

from mlsec_platform.catalog.governance import ColumnSpec, Generalisation


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


#: The expression of each generalisation over the (quoted) clear column.
EXPRESSIONS: dict[Generalisation, Callable[[str], str]] = {
    Generalisation.ZIP3: lambda value: f"left({value}, 3)",
    Generalisation.EMAIL_DOMAIN: lambda value: f"lower(nullif(split_part({value}, '@', 2), ''))",
    Generalisation.PHONE_AREA_CODE: (
        lambda value: f"nullif(regexp_extract({value}, '\\((\\d{{2}})\\)', 1), '')"
    ),
}

#: The same in Spark SQL, for the Spark engine (its string literals take backslash escapes).
SPARK_EXPRESSIONS: dict[Generalisation, Callable[[str], str]] = {
    Generalisation.ZIP3: lambda value: f"left({value}, 3)",
    Generalisation.EMAIL_DOMAIN: lambda value: f"lower(nullif(split_part({value}, '@', 2), ''))",
    Generalisation.PHONE_AREA_CODE: (
        lambda value: f"nullif(regexp_extract({value}, '\\\\((\\\\d{{2}})\\\\)', 1), '')"
    ),
}

for _table in (EXPRESSIONS, SPARK_EXPRESSIONS):
    if set(_table) != set(Generalisation):
        raise RuntimeError(
            f"generalisations without an expression: {sorted(set(Generalisation) - set(_table))}"
        )


def generalised_columns(table: pa.Table, columns: Sequence[ColumnSpec]) -> dict[str, pa.Array]:
    """The values of each generalised column in ``columns``, computed from ``table``'s clear
    columns (row order kept)."""
    if not columns:
        return {}
    select = ", ".join(
        f"{EXPRESSIONS[c.generalised](_quoted(c.from_column))} AS {_quoted(c.name)}"
        for c in columns
    )
    clear = table.select(sorted({c.from_column for c in columns}))
    con = duckdb.connect()
    try:
        con.register("batch", clear)
        result = con.sql(f"SELECT {select} FROM batch").to_arrow_table()  # noqa: S608 - catalog names
    finally:
        con.close()
    return {name: result.column(name).combine_chunks() for name in result.column_names}
