"""Raw batches past retention move to the Cold zone and back: every step one Delta commit.

Cold keeps one Delta table per source, ``s3://<prefix>cold/<source>``, partitioned by
``_batch_id`` like Raw, holding the archived rows exactly as they were in Raw (lineage
columns included). Only the ``lifecycle`` identity can read, write or delete there, and it is
the only identity allowed to delete objects in Raw. Raw is append-only: how a batch is
still removed from it (lift, DELETE, seal) is told in ``sealing.py``.

Order, so a killed run is completed by the next one, without loss or duplicates
    archive: (1) copy each batch to Cold, one commit per batch, skipped when Cold already holds
    it; (2) check Cold holds as many rows as Raw; (3) lift, DELETE, seal; (4) audit each batch
    (``lifecycle.archived``); (5) delete the batch's now unreferenced objects from the Raw
    bucket, so the data has really left Raw (time travel to older Raw versions no longer finds
    them). A re-run skips (1) for batches Cold has, removes in (3) what Raw still holds, and
    finds the folders left by a run killed before (5): batches in Cold, absent from the Raw
    log, with objects still in the Raw bucket. Those are audited (again, if the killed run got
    that far: an event may repeat, never go missing), marked ``recovered``, and deleted.

    restore: (1) append each batch from Cold to Raw (one commit per batch, with the same
    ``mlsec.batch_id`` commit metadata as the connectors, so a connector re-run of the batch
    sees it as committed), skipped when Raw holds it; (2) check the row counts; (3) one DELETE
    of the restored batches from Cold; (4) audit (``lifecycle.restored``); (5) delete the
    unreferenced Cold objects.

Retention counts from the later of ``_ingested_at`` and the time the batch's files were
written to Raw: a restored batch keeps its original lineage columns and still stays a full
retention period before it is archived again.

Only one lifecycle run may work at a time (``jobs.py`` refuses to start beside another); the
folder clean-up relies on it. Re-ingesting an archived batch through its connector is not
supported: restore it instead.
"""

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import CommitProperties, DeltaTable, write_deltalake

from mlsec_platform.errors import MlsecError
from mlsec_platform.resources.s3_lake import S3LakeResource
from mlsec_platform.settings import Zone
from mlsec_platform.storage.commits import committed_version
from mlsec_platform.storage.raw_writer import RAW_TABLE_CONFIGURATION, open_table

PARTITION = "_batch_id"
COLD_TABLE_CONFIGURATION = {
    # The history of what moved when stays readable: old log files are never deleted.
    "delta.enableExpiredLogCleanup": "false",
}


class LifecycleError(MlsecError, RuntimeError):
    """Base of the lifecycle's errors: nothing was removed from where it was."""


class ArchiveMismatch(LifecycleError):
    """Cold and Raw disagree on a batch's row count, so the batch is not removed anywhere."""


class BatchNotArchived(LifecycleError):
    """A batch asked to be restored is neither in Cold nor in Raw."""


class UnknownSource(LifecycleError):
    """No Raw table by that name."""


@dataclass(frozen=True)
class BatchFiles:
    """One batch (partition) as the Delta log of a table describes it."""

    batch_id: str
    rows: int
    #: When its newest file was written (ingestion, or the restore that brought it back).
    written_at: datetime
    #: The batch's ``_ingested_at``, from the file statistics when the log has them.
    ingested_at: datetime | None


@dataclass(frozen=True)
class Moved:
    """What one batch's move did, for the audit event and Dagster metadata."""

    source: str
    batch_id: str
    rows: int
    raw_version: int | None
    cold_version: int | None
    #: True when the copy into the other zone was already there (made by an earlier run).
    already: bool = False
    #: True when an earlier, killed run removed the batch but did not finish (clean-up now).
    recovered: bool = False
    files_deleted: int = 0

    def payload(self, run_id: str | None) -> dict:
        return {
            "source": self.source,
            "batch_id": self.batch_id,
            "rows": self.rows,
            "raw_version": self.raw_version,
            "cold_version": self.cold_version,
            "run_id": run_id,
            "already": self.already,
            "recovered": self.recovered,
        }


def _parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def inventory(table: DeltaTable | None) -> dict[str, BatchFiles]:
    """Every batch the table's current snapshot holds, from the log alone (no data read)."""
    if table is None:
        return {}
    if table.metadata().partition_columns != [PARTITION]:
        raise LifecycleError(f"{table.table_uri} is not partitioned by {PARTITION}: left alone")
    actions = pa.table(table.get_add_actions(flatten=True)).to_pydict()
    batches: dict[str, dict] = {}
    files = len(actions.get("num_records", []))
    for rows, modified, batch, ingested in zip(
        actions.get("num_records", []),
        actions.get("modification_time", []),
        actions.get(f"partition.{PARTITION}", []),
        actions.get("max._ingested_at", [None] * files),
        strict=True,
    ):
        entry = batches.setdefault(batch, {"rows": 0, "written": 0, "ingested": []})
        entry["rows"] += int(rows or 0)
        entry["written"] = max(entry["written"], int(modified))
        entry["ingested"].append(ingested)
    return {
        batch: BatchFiles(
            batch_id=batch,
            rows=e["rows"],
            written_at=datetime.fromtimestamp(e["written"] / 1000, UTC),
            # Unknown for the whole batch if any file lacks statistics (read instead).
            ingested_at=None if None in e["ingested"] else max(map(_parse_time, e["ingested"])),
        )
        for batch, e in batches.items()
    }


def _ingested_at_from_data(table: DeltaTable, batch_ids: Iterable[str]) -> dict[str, datetime]:
    """``_ingested_at`` of batches whose files carry no statistics for it (one column read)."""
    wanted = list(batch_ids)
    if not wanted:
        return {}
    data = table.to_pyarrow_dataset().to_table(
        columns=[PARTITION, "_ingested_at"], filter=pc.field(PARTITION).isin(wanted)
    )
    latest: dict[str, datetime] = {}
    for batch, value in zip(
        data.column(PARTITION).to_pylist(), data.column("_ingested_at").to_pylist(), strict=True
    ):
        parsed = _parse_time(value)
        if parsed is not None and (batch not in latest or parsed > latest[batch]):
            latest[batch] = parsed
    return latest


def batches_past(
    table: DeltaTable, cutoff: datetime, only: Iterable[str] | None = None
) -> list[BatchFiles]:
    """Batches ingested, and written to this table, before ``cutoff`` (oldest first).

    A batch whose ``_ingested_at`` cannot be read is kept (never archived on a guess).
    """
    held = inventory(table)
    if only is not None:
        held = {b: f for b, f in held.items() if b in set(only)}
    missing = [b for b, f in held.items() if f.ingested_at is None]
    read = _ingested_at_from_data(table, missing)
    past = []
    for batch, files in held.items():
        ingested = files.ingested_at or read.get(batch)
        if ingested is not None and ingested < cutoff and files.written_at < cutoff:
            past.append(files)
    return sorted(past, key=lambda f: (f.written_at, f.batch_id))


def _sql_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def in_predicate(batch_ids: Iterable[str]) -> str:
    return f"{PARTITION} IN ({', '.join(_sql_string(b) for b in sorted(batch_ids))})"


def _batch_reader(table: DeltaTable, batch_id: str) -> pa.RecordBatchReader:
    """The batch's rows, streamed (a large batch never sits in memory whole)."""
    dataset = table.to_pyarrow_dataset()
    return dataset.scanner(filter=pc.field(PARTITION) == batch_id).to_reader()


def commit_properties(run_id: str | None, step: str, **extra: str) -> CommitProperties:
    return CommitProperties(
        custom_metadata={"mlsec.lifecycle": step, "mlsec.run_id": run_id or "", **extra}
    )


# -- copies between the zones -----------------------------------------------------------------
def _copy(
    lake: S3LakeResource,
    source: str,
    origin: DeltaTable,
    batch: BatchFiles,
    run_id: str | None,
    to: Zone,
) -> Moved:
    """Append the batch's rows from ``origin`` to the ``to`` zone's table as one commit, unless
    that table holds the batch already; then check both hold as many rows."""
    uri = lake.table_uri(to, source)
    options = lake.storage_options()
    target = open_table(uri, options)
    held = inventory(target).get(batch.batch_id)
    already = held is not None
    if not already:
        step, configuration, read = (
            ("archive", COLD_TABLE_CONFIGURATION, "mlsec.raw_version")
            if to is Zone.COLD
            # Raw is append-only: an append needs no lift.
            else ("restore", RAW_TABLE_CONFIGURATION, "mlsec.cold_version")
        )
        write_deltalake(
            target if target is not None else uri,
            _batch_reader(origin, batch.batch_id),
            mode="append",
            partition_by=[PARTITION],
            configuration=configuration if target is None else None,
            storage_options=options,
            # mlsec.batch_id as the connectors write it: a connector re-run of a restored
            # batch finds it committed.
            commit_properties=commit_properties(
                run_id, step, **{"mlsec.batch_id": batch.batch_id, read: str(origin.version())}
            ),
        )
        target = DeltaTable(uri, storage_options=options)
        held = inventory(target).get(batch.batch_id)
    rows = held.rows if held is not None else 0
    if rows != batch.rows:
        raise ArchiveMismatch(
            f"{source}/{batch.batch_id}: {to} holds {rows} rows, the other zone {batch.rows}; "
            f"the batch stays where it was. Inspect {uri} before running the lifecycle again."
        )
    # Our own commit is among the latest; one found again after a re-run may be older.
    version = committed_version(
        target, "mlsec.batch_id", batch.batch_id, limit=None if already else 50
    )
    return Moved(
        source,
        batch.batch_id,
        rows,
        raw_version=version if to is Zone.RAW else None,
        cold_version=version if to is Zone.COLD else None,
        already=already,
    )


def copy_to_cold(
    lake: S3LakeResource, source: str, raw: DeltaTable, batch: BatchFiles, run_id: str | None
) -> Moved:
    """Append the batch's Raw rows to Cold as one commit, unless Cold already holds it."""
    return _copy(lake, source, raw, batch, run_id, to=Zone.COLD)


def copy_to_raw(
    lake: S3LakeResource, source: str, cold: DeltaTable, batch: BatchFiles, run_id: str | None
) -> Moved:
    """Append the batch's Cold rows to Raw as one commit, unless Raw already holds it."""
    return _copy(lake, source, cold, batch, run_id, to=Zone.RAW)


def remove_from_cold(table: DeltaTable, batch_ids: Iterable[str], run_id: str | None) -> int:
    """One DELETE commit removing restored batches from Cold (which is not append-only)."""
    batches = sorted(set(batch_ids))
    table.delete(
        in_predicate(batches),
        commit_properties=commit_properties(
            run_id, "restore", **{"mlsec.batch_ids": json.dumps(batches)}
        ),
    )
    return table.version()


def removal_version(table: DeltaTable, step: str, batch_id: str) -> int | None:
    """The latest lifecycle DELETE (``step``) that removed ``batch_id`` from ``table``."""
    for entry in table.history(None):
        if entry.get("mlsec.lifecycle") == step and batch_id in json.loads(
            entry.get("mlsec.batch_ids", "[]")
        ):
            return int(entry["version"])
    return None
