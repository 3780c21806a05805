"""Finding the Delta commit a writer made, by the metadata it attached to it."""

import dagster as dg
from deltalake import DeltaTable


def committed_version(table: DeltaTable, key: str, value: str, limit: int | None = 50) -> int:
    """The version whose commit metadata has ``key == value`` (our own commit, found exactly)."""
    for entry in table.history(limit):
        if entry.get(key) == value:
            return int(entry["version"])
    raise dg.DagsterInvariantViolationError(
        f"commit with {key}={value} not found in the history of {table.table_uri}"
    )
