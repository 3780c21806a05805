"""A Delta table without one data subject, now and in every version still readable.

1. **Remove**: one commit rewrites the partitions (or the table) holding the subject's rows
   without them, free text quoting them redacted; it carries ``mlsec.erasure`` (Raw is lifted
   and sealed around it, ``sealing.py``). A new version without the rows.
2. **Cut the history**: older versions still hold the rows, their files the values and the
   log their statistics (a column's min or max may be the subject's own value). So the
   erasure vacuums every file no longer in the current version (retention 0, not the table's
   ``deletedFileRetentionDuration``: an erasure does not wait), plus files no version ever
   referenced that are older than :data:`ORPHAN_HOURS` (a killed write's; younger ones may
   belong to a write in flight). Then it commits the table property ``mlsec.erasure.cut`` =
   that commit's version, checkpoints there and deletes every log entry before it. Versions
   before the cut cannot be read any more by anyone (the log that described them is gone) and
   the broker answers their pins 410 (:func:`read_cut`).

A run killed between 1 and 2 is finished by the next: a table whose log still shows an
``mlsec.erasure`` commit has an unfinished cut (:func:`needs_cut`), whether or not anything is
left to remove.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from contextlib import nullcontext
from dataclasses import dataclass
from functools import reduce

import pyarrow as pa
import pyarrow.compute as pc
from botocore.exceptions import ClientError
from deltalake import CommitProperties, DeltaTable, write_deltalake
from deltalake.exceptions import CommitFailedError

from mlsec_platform.privacy.erasure.scope import REDACTED, TableRule
from mlsec_platform.resources.s3_lake import S3LakeResource
from mlsec_platform.settings import Zone
from mlsec_platform.storage.archive import in_predicate
from mlsec_platform.storage.raw_writer import open_table
from mlsec_platform.storage.sealing import is_sealed, lifted
from mlsec_platform.storage.zone_objects import delete_keys

#: Commit metadata of an erasure's rewrite commits (the erasure's id).
ERASURE_COMMIT = "mlsec.erasure"
#: Table property: the first version after the table's latest erasure.
ERASURE_CUT = "mlsec.erasure.cut"
#: Object in a curated table's folder holding its cut, for readers that never load the log
#: (the broker). Delta ignores names starting with ``_``; vacuum leaves it.
CUT_MARKER = "_mlsec_erasure.json"
#: Unreferenced files younger than this may be a write in flight: left to their writer.
ORPHAN_HOURS = 1
_CUT_ATTEMPTS = 3
_LOG_ENTRY = re.compile(r"(\d{20})\.")


@dataclass(frozen=True)
class DeltaErasure:
    """What erasing one table did, for the receipt."""

    place: str
    rows_removed: int = 0
    texts_redacted: int = 0
    version_before: int | None = None
    #: The cut: the first version without the subject whose log survives (None: not cut).
    version_after: int | None = None
    files_removed: int = 0
    log_entries_removed: int = 0

    @property
    def changed(self) -> bool:
        return bool(self.rows_removed or self.texts_redacted or self.version_after is not None)

    def receipt_entry(self) -> dict:
        return {"place": self.place, "kind": "delta"} | {
            k: v for k, v in self.__dict__.items() if k != "place" and v is not None
        }


def plain_strings(table: pa.Table) -> pa.Table:
    """``table`` with string views as plain strings: files a delta-rs DELETE rewrote hold
    views (delta-rs 1.4+, issue 4579), for which pyarrow has no comparison kernels."""
    fields = [
        f.with_type(pa.string()) if pa.types.is_string_view(f.type) else f for f in table.schema
    ]
    return table.cast(pa.schema(fields))


def row_mask(table: pa.Table, rule: TableRule, keys: Mapping[str, set[str]]) -> pa.Array:
    """True for each row whose key columns hold one of the subject's keys."""
    mask = pa.array([False] * table.num_rows, pa.bool_())
    for column in rule.match:
        if keys.get(column) and column in table.column_names:
            hit = pc.is_in(table.column(column), pa.array(sorted(keys[column]), pa.string()))
            mask = pc.or_(mask, pc.fill_null(hit, False))
    return mask


def _quoting(column: pa.ChunkedArray, needles: list[str]) -> pa.Array:
    mask = pa.array([False] * len(column), pa.bool_())
    for needle in needles:
        mask = pc.or_(mask, pc.fill_null(pc.match_substring(column, needle), False))
    return mask


def _redacted(column: pa.ChunkedArray, needles: list[str]) -> pa.ChunkedArray:
    for needle in needles:
        column = pc.replace_substring(column, needle, REDACTED)
    return column


def erase_table(
    lake: S3LakeResource,
    zone: Zone,
    name: str,
    rule: TableRule,
    keys: Mapping[str, set[str]],
    needles: list[str],
    erasure_id: str,
) -> DeltaErasure | None:
    """Remove the subject's rows from ``<zone>/<name>`` and redact free text quoting them (step
    1 above); None if the table does not exist. The cut is :func:`cut_history`'s.

    The rows are rewritten from Arrow, not by a Delta DELETE: a partitioned table (Raw, Cold)
    has the partitions holding the subject replaced (predicate on the partition column only:
    batch ids, no personal data, reach the log), any other table is replaced whole. Either is
    one commit, and the files keep plain string columns."""
    table = open_table(lake.table_uri(zone, name), lake.storage_options())
    if table is None:
        return None
    place, before = f"{zone.value}/{name}", table.version()
    data = table.to_pyarrow_dataset()
    parts = list(table.metadata().partition_columns)
    present = set(data.schema.names)
    rule = TableRule(
        tuple(c for c in rule.match if c in present),
        tuple(c for c in rule.free_text if c in present),
    )
    looked = plain_strings(data.to_table(columns=sorted({*rule.match, *rule.free_text, *parts})))
    doomed = row_mask(looked, rule, keys)
    quoted = {
        c: pc.and_(_quoting(looked.column(c), needles), pc.invert(doomed)) for c in rule.free_text
    }
    removed = int(pc.sum(doomed).as_py() or 0)
    redacted = sum(int(pc.sum(m).as_py() or 0) for m in quoted.values())
    if not removed and not redacted:
        return DeltaErasure(place, version_before=before)
    touched = reduce(pc.or_, quoted.values(), doomed)
    predicate = None
    if parts:
        batches = sorted(set(looked.column(parts[0]).filter(touched).to_pylist()))
        predicate = in_predicate(batches)
        rows = plain_strings(data.to_table(filter=pc.field(parts[0]).isin(batches)))
    else:
        rows = plain_strings(data.to_table())
    rows = rows.filter(pc.invert(row_mask(rows, rule, keys)))
    for column in rule.free_text:
        rows = rows.set_column(
            rows.column_names.index(column), column, _redacted(rows.column(column), needles)
        )
    meta = CommitProperties(custom_metadata={ERASURE_COMMIT: erasure_id})
    with lifted(table, None) if is_sealed(table) else nullcontext(table):
        write_deltalake(
            table,
            rows.cast(data.schema),
            mode="overwrite",
            predicate=predicate,
            partition_by=parts or None,
            commit_properties=meta,
        )
    return DeltaErasure(place, rows_removed=removed, texts_redacted=redacted, version_before=before)


def needs_cut(table: DeltaTable) -> bool:
    """The log still shows an erasure commit: its history has not been cut yet."""
    return any(ERASURE_COMMIT in entry for entry in table.history())


def cut_history(lake: S3LakeResource, zone: Zone, name: str) -> tuple[int, int, int]:
    """Step 2 above: (cut version, data files removed, log entries removed)."""
    uri, options = lake.table_uri(zone, name), lake.storage_options()
    table = DeltaTable(uri, storage_options=options)
    removed = table.vacuum(retention_hours=0, enforce_retention_duration=False, dry_run=False)
    removed += table.vacuum(
        retention_hours=ORPHAN_HOURS, enforce_retention_duration=False, dry_run=False, full=True
    )
    cut = _commit_cut(DeltaTable(uri, storage_options=options))
    DeltaTable(uri, storage_options=options, version=cut).create_checkpoint()
    return cut, len(removed), _delete_log_before(lake, zone, name, cut)


def _commit_cut(table: DeltaTable) -> int:
    """Commit ``mlsec.erasure.cut`` = the version of that very commit; returns it."""
    for _ in range(_CUT_ATTEMPTS):
        expected = table.version() + 1
        try:
            table.alter.set_table_properties(
                {ERASURE_CUT: str(expected)}, raise_if_not_exists=False
            )
        except CommitFailedError:
            table.update_incremental()
            continue
        table.update_incremental()
        if table.version() == expected:
            return expected
    raise CommitFailedError(f"{table.table_uri}: other writers kept moving the table on")


def _delete_log_before(lake: S3LakeResource, zone: Zone, name: str, cut: int) -> int:
    s3, bucket = lake.client(), lake.bucket(zone)
    pages = s3.get_paginator("list_objects_v2").paginate(
        Bucket=bucket, Prefix=f"{name}/_delta_log/"
    )
    doomed = []
    for page in pages:
        for obj in page.get("Contents", []):
            entry = _LOG_ENTRY.match(obj["Key"].rsplit("/", 1)[-1])
            if entry and int(entry[1]) < cut:
                doomed.append(obj["Key"])
    delete_keys(lake, zone, doomed)
    return len(doomed)


def write_cut(lake: S3LakeResource, zone: Zone, name: str, cut: int, erasure_id: str) -> None:
    """Tell readers the table's versions before ``cut`` are erased (never lowers a cut)."""
    if read_cut(lake, zone, name) >= cut:
        return
    lake.client().put_object(
        Bucket=lake.bucket(zone),
        Key=f"{name}/{CUT_MARKER}",
        Body=json.dumps({"cut": cut, "erasure": erasure_id}).encode(),
        ContentType="application/json",
    )


def read_cut(lake: S3LakeResource, zone: Zone, name: str, s3=None) -> int:
    """The table's erasure cut (0: never erased); ``s3``: a client of ``lake`` to reuse."""
    try:
        body = (s3 or lake.client()).get_object(
            Bucket=lake.bucket(zone), Key=f"{name}/{CUT_MARKER}"
        )
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
            return 0
        raise
    return int(json.loads(body["Body"].read())["cut"])
