"""Raw is append-only, and how the lifecycle still removes batches.

Raw tables carry ``delta.appendOnly=true``. delta-rs 1.6 enforces it when it commits: a
DELETE, or an overwrite with a predicate, fails with "The transaction includes Remove
action with data change but Delta table is append-only". The check reads the property
from the snapshot the transaction started from, so no single commit can lift it for
itself. The lifecycle therefore changes the property around its own removal, as three
consecutive commits by one writer: lift (``delta.appendOnly=false``), one DELETE of
every batch this run archives from the source, seal (``delta.appendOnly=true``, in a
``finally``). Readers see each batch in Raw or not: the DELETE is the one commit that
removes it.

Rejected: removes marked ``dataChange=false`` (what OPTIMIZE writes, which append-only
tables accept) would tell change-feed and streaming readers that no data left; a log
entry written by hand would skip the protocol check instead of meeting it; dropping the
property from Raw for good would let any delta-rs writer delete.

An erasure (``storage/erasure``) lifts Raw the same way around the commits that remove one
data subject's rows (:func:`lifted`). Raw is lifted only for the span of those commits, at
most once per source and run, and only when there is something to remove. A connector commit
that races the lift or the seal fails with "Metadata changed since last commit" and writes
nothing; its run can be re-run. A run killed while Raw is lifted leaves it lifted: the next
lifecycle run or erasure seals every Raw table it finds lifted before anything else (audited
as ``lifecycle.resealed``). The property is the rule delta-rs writers obey; the storage
enforces the rest, since no other identity holds ``s3:DeleteObject`` on Raw.
"""

import json
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from deltalake import DeltaTable
from deltalake.exceptions import CommitFailedError

from mlsec_platform.resources.s3_lake import S3LakeResource
from mlsec_platform.settings import Zone
from mlsec_platform.storage.archive import commit_properties, in_predicate
from mlsec_platform.storage.raw_writer import open_table

APPEND_ONLY = "delta.appendOnly"
_SEAL_ATTEMPTS = 3


def is_sealed(table: DeltaTable) -> bool:
    return table.metadata().configuration.get(APPEND_ONLY) == "true"


def _set_append_only(table: DeltaTable, value: bool, run_id: str | None) -> None:
    table.alter.set_table_properties(
        {APPEND_ONLY: "true" if value else "false"},
        commit_properties=commit_properties(run_id, "seal" if value else "lift"),
    )


def seal(lake: S3LakeResource, source: str, run_id: str | None) -> bool:
    """Make the Raw table append-only again if a killed run left it lifted; True if it had to."""
    for attempt in range(_SEAL_ATTEMPTS):
        table = open_table(lake.table_uri(Zone.RAW, source), lake.storage_options())
        if table is None or is_sealed(table):
            return False
        try:
            _set_append_only(table, True, run_id)
            return True
        except CommitFailedError:
            # A concurrent append moved the table on: seal the new snapshot.
            if attempt == _SEAL_ATTEMPTS - 1:
                raise
    return False


@contextmanager
def lifted(table: DeltaTable, run_id: str | None) -> Iterator[DeltaTable]:
    """``table`` writable for the block's removals, sealed again after it, whatever happens."""
    _set_append_only(table, False, run_id)
    try:
        yield table
    finally:
        table.update_incremental()
        for attempt in range(_SEAL_ATTEMPTS):
            try:
                _set_append_only(table, True, run_id)
                break
            except CommitFailedError:
                if attempt == _SEAL_ATTEMPTS - 1:
                    raise
                table.update_incremental()


def remove_from_raw(table: DeltaTable, batch_ids: Iterable[str], run_id: str | None) -> int:
    """One DELETE commit removing these batches from Raw, inside a lift/seal pair. Returns the
    DELETE's version."""
    batches = sorted(set(batch_ids))
    with lifted(table, run_id):
        table.delete(
            in_predicate(batches),
            commit_properties=commit_properties(
                run_id, "archive", **{"mlsec.batch_ids": json.dumps(batches)}
            ),
        )
        return table.version()
