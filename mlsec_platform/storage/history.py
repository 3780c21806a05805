"""How long a Delta table keeps older versions: the platform's one setting, as table properties.

``delta_history_retention_days`` becomes each curated table's ``delta.logRetentionDuration``
(delta-rs deletes log entries older than this when it checkpoints, and those versions can no
longer be read) and ``delta.deletedFileRetentionDuration`` (the youngest a file removed from
the table may be when a vacuum deletes it). Raw and Cold keep their whole log on purpose
(``delta.enableExpiredLogCleanup=false``: it is the record of what was ingested and moved).
An erasure cuts any table at once, whatever these say (``storage/erasure/delta.py``).
"""

from __future__ import annotations

from deltalake import DeltaTable

LOG_RETENTION = "delta.logRetentionDuration"
DELETED_FILE_RETENTION = "delta.deletedFileRetentionDuration"


def history_properties(days: int) -> dict[str, str]:
    """The table properties that keep ``days`` of history."""
    interval = f"interval {days} days"
    return {LOG_RETENTION: interval, DELETED_FILE_RETENTION: interval}


def keep_history(table: DeltaTable, days: int) -> bool:
    """Set the table's history retention to ``days`` if it says otherwise; True if it had to
    (one metadata commit)."""
    return keep_properties(table, history_properties(days))


#: Curated tables record their changes row by row (Delta's change data feed): an incremental
#: run downstream reads which keys a merge changed (``storage/incremental.py``).
CHANGE_FEED = {"delta.enableChangeDataFeed": "true"}


def curated_properties(days: int | None) -> dict[str, str]:
    """The table properties of a curated table: its change feed and ``days`` of history."""
    return {**(history_properties(days) if days is not None else {}), **CHANGE_FEED}


def keep_properties(table: DeltaTable, wanted: dict[str, str]) -> bool:
    """Set ``wanted`` on the table if it says otherwise; True if it had to (one commit)."""
    held = table.metadata().configuration
    if all(held.get(k) == v for k, v in wanted.items()):
        return False
    table.alter.set_table_properties(wanted)
    return True
