"""DuckDB over Arrow: the default engine of the curated transforms."""

from __future__ import annotations

import os

import duckdb
import pyarrow as pa


def run_sql(sql: str, **tables: pa.Table) -> pa.Table:
    """Run ``sql`` on an in-memory DuckDB with ``tables`` registered under their names (UTC)."""
    con = duckdb.connect(config={"threads": os.cpu_count() or 1})
    try:
        con.execute("SET TimeZone = 'UTC'")
        for name, table in tables.items():
            con.register(name, table)
        return con.sql(sql).to_arrow_table()
    finally:
        con.close()
