"""Appending one batch to a Raw table: one Delta commit, lineage on every row, never twice.

Raw tables are partitioned by ``_batch_id``: whether a batch is already in is answered from the
Delta log alone, so re-running a batch (after a crash between commit and acknowledgement, or by
hand) writes nothing. The tables are ``delta.appendOnly`` and the connector identity holds no
S3 delete permission on raw: nothing can rewrite what was ingested.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime

import dagster as dg
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from deltalake import CommitProperties, DeltaTable, write_deltalake
from deltalake.exceptions import CommitFailedError, TableNotFoundError

from mlsec_platform.resources.s3_lake import S3LakeResource
from mlsec_platform.settings import Zone
from mlsec_platform.storage.commits import committed_version

LINEAGE_COLUMNS = (
    "_source",
    "_connector",
    "_connector_version",
    "_batch_id",
    "_sha256",
    "_received_at",
    "_ingested_at",
)
#: Extra columns of event tables: where each event sat in the stream, and when NATS got it.
STREAM_COLUMNS = ("_stream_seq", "_nats_received_at")
#: Tries of one batch's commit when it races a table-metadata change.
COMMIT_ATTEMPTS = 4
RAW_TABLE_CONFIGURATION = {
    "delta.appendOnly": "true",
    # Old log files are never deleted: the connector may not delete in raw anyway.
    "delta.enableExpiredLogCleanup": "false",
}


@dataclass(frozen=True)
class Lineage:
    source: str
    connector: str
    connector_version: str
    batch_id: str
    received_at: str
    #: One checksum for the whole batch (a file) or one per row (events).
    sha256: str | pa.Array


@dataclass(frozen=True)
class RawCommit:
    table_uri: str
    version: int
    rows: int
    already_committed: bool

    def metadata(self) -> dict:
        """What every raw materialization reports about its commit."""
        return {
            "rows": self.rows,
            "dagster/row_count": self.rows,
            "delta_version": self.version,
            "table_uri": dg.MetadataValue.text(self.table_uri),
            "already_committed": self.already_committed,
        }


def with_stream_columns(events: pa.Table, received_at: str) -> pa.Table:
    """Events as the event connector stores them, numbered from 1 in stream order, all received
    at ``received_at`` (for seeding Raw outside the connector: tests and benchmarks)."""
    seq = pa.array(range(1, events.num_rows + 1), pa.int64()).cast(pa.string())
    return events.append_column(STREAM_COLUMNS[0], seq).append_column(
        STREAM_COLUMNS[1], pa.array([received_at] * events.num_rows, pa.string())
    )


def _constant(value: str, rows: int, *, dictionary: bool = True) -> pa.Array:
    """A column holding one value. Dictionary-encoded, it costs nothing to build and Parquet
    writes it as one dictionary entry (Delta still stores plain strings); partition columns
    must be plain."""
    if dictionary:
        return pa.DictionaryArray.from_arrays(
            pa.array(np.zeros(rows, dtype=np.int32)), pa.array([value], pa.string())
        )
    return pc.fill_null(pa.nulls(rows, pa.string()), value)


def with_lineage(table: pa.Table, lineage: Lineage, ingested_at: str) -> pa.Table:
    rows = table.num_rows
    sha = (
        lineage.sha256 if isinstance(lineage.sha256, pa.Array) else _constant(lineage.sha256, rows)
    )
    values = {
        "_source": _constant(lineage.source, rows),
        "_connector": _constant(lineage.connector, rows),
        "_connector_version": _constant(lineage.connector_version, rows),
        "_batch_id": _constant(lineage.batch_id, rows, dictionary=False),
        "_sha256": sha,
        "_received_at": _constant(lineage.received_at, rows),
        "_ingested_at": _constant(ingested_at, rows),
    }
    for name in LINEAGE_COLUMNS:
        table = table.append_column(name, values[name])
    return table


def open_table(uri: str, options: dict[str, str]) -> DeltaTable | None:
    try:
        return DeltaTable(uri, storage_options=options)
    except TableNotFoundError:
        return None


def committed_batch(table: DeltaTable | None, batch_id: str) -> RawCommit | None:
    """The commit that already holds this batch, if any (read from the Delta log)."""
    if table is None:
        return None
    actions = pa.table(table.get_add_actions(flatten=True)).to_pydict()
    rows = sum(
        n
        for n, b in zip(
            actions.get("num_records", []), actions.get("partition._batch_id", []), strict=False
        )
        if b == batch_id
    )
    if not rows and batch_id not in actions.get("partition._batch_id", []):
        return None
    version = committed_version(table, "mlsec.batch_id", batch_id, limit=None)
    return RawCommit(table.table_uri, version, int(rows), already_committed=True)


def batch_with_content(table: DeltaTable | None, sha256: str) -> str | None:
    """The batch already in Raw with this exact content (same checksum), if any.

    ``_sha256`` is constant within a file batch, so Parquet statistics skip every other file.
    """
    if table is None:
        return None
    found = table.to_pyarrow_dataset().to_table(
        columns=["_batch_id"], filter=pc.field("_sha256") == sha256
    )
    return found.column(0)[0].as_py() if found.num_rows else None


def commit_raw_batch(
    lake: S3LakeResource,
    data: pa.Table,
    lineage: Lineage,
    *,
    run_id: str | None,
    table: DeltaTable | None = None,
) -> RawCommit:
    """Append ``data`` with lineage as one commit, unless the batch is already in.

    A commit that loses a race with a table-metadata change (the lifecycle job lifting and
    sealing ``delta.appendOnly`` around a retention delete) wrote nothing; it is retried on
    the new table state, a few times.
    """
    uri = lake.table_uri(Zone.RAW, lineage.source)
    options = lake.storage_options()
    for attempt in range(COMMIT_ATTEMPTS):
        try:
            return _commit_once(lake, data, lineage, run_id, uri, options, table)
        except CommitFailedError:
            if attempt == COMMIT_ATTEMPTS - 1:
                raise
            table = None  # re-read the log: the batch may be in, or the metadata moved on
            time.sleep(0.5 * (attempt + 1))
    raise AssertionError("unreachable")


def _commit_once(lake, data, lineage, run_id, uri, options, table) -> RawCommit:
    table = table or open_table(uri, options)
    existing = committed_batch(table, lineage.batch_id)
    if existing is not None:
        return existing
    ingested_at = datetime.now(UTC).isoformat()
    write_deltalake(
        table if table is not None else uri,
        with_lineage(data, lineage, ingested_at),
        mode="append",
        partition_by=["_batch_id"],
        configuration=RAW_TABLE_CONFIGURATION if table is None else None,
        storage_options=options,
        commit_properties=CommitProperties(
            custom_metadata={
                "mlsec.batch_id": lineage.batch_id,
                "mlsec.run_id": run_id or "",
                "mlsec.connector": lineage.connector,
                "mlsec.connector_version": lineage.connector_version,
            }
        ),
    )
    written = DeltaTable(uri, storage_options=options)
    version = committed_version(written, "mlsec.batch_id", lineage.batch_id)
    return RawCommit(uri, version, data.num_rows, already_committed=False)
