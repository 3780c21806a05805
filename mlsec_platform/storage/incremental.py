"""Incremental curation: what a Raw table gained since a curated table last read it, and the
batch that replaces only the changed keys' rows of that table.

A curated commit records what it was made from (``mlsec.inputs`` in the Delta commit's own
metadata: each input's version and a digest of the excluded Raw batches). The next run reads
that record from the table's newest commit; when the table was last written by anything else
(an erasure, a run before this record existed), an excluded batch was added or removed, an
input other than Raw moved, or the run asks for it (tag ``mlsec/full_rebuild``), the table is
rebuilt from all of Raw instead, as it is when a run changed more than
:data:`MAX_REPLACED_KEYS` keys. Raw is append-only, so what it gained is exactly the files
added between the recorded version and now (:func:`added_rows`); anything else (a removed or
rewritten file: an archive move or an erasure) also means a full rebuild.

A :class:`CuratedBatch` is what such an asset hands its IO manager: the rows and, for an
incremental run, the column whose values they replace. The IO manager commits it as one Delta
version either way.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import KW_ONLY, dataclass, field
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
from deltalake import DeltaTable
from deltalake.exceptions import DeltaError, TableNotFoundError

from mlsec_platform.resources.s3_lake import S3LakeResource
from mlsec_platform.settings import Zone
from mlsec_platform.storage.erasure.delta import ERASURE_COMMIT
from mlsec_platform.storage.snapshots import Snapshot

if TYPE_CHECKING:
    from mlsec_platform.storage.engine_tables import StagedTable

#: The run tag that makes every curated table rebuild from all of its inputs.
FULL_REBUILD_TAG = "mlsec/full_rebuild"
#: The commit metadata key under which a curated commit records its inputs.
INPUTS_KEY = "mlsec.inputs"
#: Most key values one incremental commit replaces by a list; a run that changed more rebuilds
#: in full, unless its batch merges (:attr:`CuratedBatch.merge`). The replace is a Delta
#: predicate listing the values: delta-rs took 4.5 s for 5,000 values and 22.6 s for 20,000
#: over 200k rows here, and crashed (segmentation fault) on 100,000.
MAX_REPLACED_KEYS = 5_000


@dataclass(frozen=True)
class CuratedBatch:
    """Rows for the IO manager: the whole table (``replaces`` None), or every row of some
    values of the column ``replaces``: the table's rows with those values are replaced by
    these in one commit (a delete and an insert; rows of other values stay as they are).

    On the Spark engine the rows are a staged table on the engine, which already holds the
    kept rows of the files its commit removes (``storage/engine_incremental.py``)."""

    table: pa.Table | StagedTable
    #: What the rows were made from; recorded in the commit (see the module).
    inputs: Mapping[str, object] = field(default_factory=dict)
    replaces: str | None = None
    # How the commit is made, by name only: two flags side by side are easy to swap.
    _: KW_ONLY
    #: ``replaces`` is the table's whole key (one row per value, here and in the table): the
    #: commit is a Delta MERGE on it, which joins instead of listing the values, so it takes
    #: any number of them (see :data:`MAX_REPLACED_KEYS` for what a list costs).
    merge: bool = False
    #: The rows of the replaced values, when ``table`` is staged (counted on the engine).
    staged_rows: int | None = None
    #: The replaced values, when some may have no rows any more (theirs are deleted); None:
    #: the values of ``replaces`` in ``table``.
    values: tuple[str, ...] | None = None

    @property
    def replaced_rows(self) -> int | None:
        """How many rows the replaced values have now."""
        return self.table.num_rows if isinstance(self.table, pa.Table) else self.staged_rows

    def predicate(self) -> str:
        """The Delta predicate selecting the rows this batch replaces."""
        column = self.table.column(self.replaces)
        if not pa.types.is_string(column.type):
            raise ValueError(f"{self.replaces} is {column.type}: only text columns are replaced")
        named = column.drop_null().to_pylist() if self.values is None else self.values
        values = sorted(set(named))
        quoted = ", ".join("'" + v.replace("'", "''") + "'" for v in values)
        return f'"{self.replaces}" IN ({quoted})'


def full_rebuild_asked(tags: Mapping[str, str]) -> bool:
    """Whether a run's tags ask every curated table to rebuild from all of its inputs."""
    return tags.get(FULL_REBUILD_TAG, "").lower() == "true"


def excluded_digest(batches: Iterable[str]) -> str:
    """A short digest of the excluded Raw batches: a change to them rebuilds the table."""
    return hashlib.sha256("\n".join(sorted(batches)).encode()).hexdigest()[:16]


def last_inputs(lake: S3LakeResource, zone: Zone, name: str) -> dict | None:
    """What the table's newest commit recorded it was made from, or None (rebuild in full)."""
    try:
        table = DeltaTable(lake.table_uri(zone, name), storage_options=lake.storage_options())
    except TableNotFoundError:
        return None
    [newest] = table.history(1) or [None]
    if newest is None or INPUTS_KEY not in newest:
        return None
    try:
        return json.loads(newest[INPUTS_KEY])
    except (TypeError, ValueError):
        return None


def added_paths(
    lake: S3LakeResource, zone: Zone, name: str, since: int, now: int
) -> list[str] | None:
    """The data files (paths relative to the table's root) the table gained from version
    ``since`` to ``now``, or None when it did more than gain files (a removed or rewritten
    file, or ``since`` no longer readable). The Spark engine reads exactly these files."""
    added = _added(lake, zone, name, since, now)
    return None if added is None else added[1]


def added_rows(
    lake: S3LakeResource, zone: Zone, name: str, since: int, now: int
) -> ds.Dataset | None:
    """The rows the table gained from version ``since`` to ``now`` (the files of
    :func:`added_paths`), or None when it did more than gain files."""
    added = _added(lake, zone, name, since, now)
    if added is None:
        return None
    after, new = added
    dataset = after.to_pyarrow_dataset()
    wanted = set(new)
    fragments = [f for f in dataset.get_fragments() if f.path in wanted]
    return ds.FileSystemDataset(fragments, dataset.schema, dataset.format, dataset.filesystem)


def _added(
    lake: S3LakeResource, zone: Zone, name: str, since: int, now: int
) -> tuple[DeltaTable, list[str]] | None:
    """The table at ``now`` and the files it gained since ``since`` (None: not only gained)."""
    uri, options = lake.table_uri(zone, name), lake.storage_options()
    if since > now:
        return None
    try:
        before = DeltaTable(uri, storage_options=options, version=since)
        after = DeltaTable(uri, storage_options=options, version=now)
    except (DeltaError, TableNotFoundError, OSError):
        return None
    old = set(_paths(before))
    paths = _paths(after)
    new = [p for p in paths if p not in old]
    if len(paths) - len(new) != len(old):  # some file of `since` is gone: not append-only
        return None
    return after, new


def _paths(table: DeltaTable) -> list[str]:
    return pa.table(table.get_add_actions(flatten=True)).column("path").to_pylist()


def changed_rows(
    lake: S3LakeResource, zone: Zone, name: str, since: int, now: int, columns: list[str]
) -> pa.Table | None:
    """``columns`` of every row a commit after ``since`` up to ``now`` inserted, updated (both
    images) or deleted, from the table's change feed; None when the feed cannot say."""
    if since > now:
        return None
    if since == now:  # nothing committed since: no rows (typed NULL, they join nothing)
        return pa.table({c: pa.array([], pa.null()) for c in columns})
    try:
        table = DeltaTable(lake.table_uri(zone, name), storage_options=lake.storage_options())
        feed = table.load_cdf(starting_version=since + 1, ending_version=now, columns=columns)
        return pa.table(feed).select(columns)
    except (DeltaError, OSError, KeyError, ValueError):
        return None


def changed_inputs(
    lake: S3LakeResource,
    zone: Zone,
    name: str,
    snapshots: list[Snapshot],
    columns: Mapping[str, str],
    full: bool,
) -> dict[str, pa.Table] | None:
    """Each input's change rows (``changed_<input>``: its column in ``columns``) since the
    versions the table's newest commit was made from; None: rebuild the table in full (asked
    for, no record, an input the record does not know, or a feed that cannot say)."""
    before = None if full else last_inputs(lake, zone, name)
    if before is None or set(before) != {s.asset for s in snapshots}:
        return None
    changes = {}
    for snapshot in snapshots:
        since = before[snapshot.asset]
        if not isinstance(since, int) or snapshot.version is None:
            return None
        rows = changed_rows(
            lake, snapshot.zone, snapshot.name, since, snapshot.version, [columns[snapshot.name]]
        )
        if rows is None:
            return None
        changes[f"changed_{snapshot.name}"] = rows
    return changes


def too_many(keys: pa.ChunkedArray | pa.Array) -> bool:
    """More distinct values than one incremental commit replaces (:data:`MAX_REPLACED_KEYS`)."""
    return len(keys) > MAX_REPLACED_KEYS and len(pc.unique(keys)) > MAX_REPLACED_KEYS


def only_merged(lake: S3LakeResource, zone: Zone, name: str, since: int, now: int) -> bool:
    """Whether every commit after ``since`` up to ``now`` was a MERGE, an append or a replace
    of some keys' rows (an overwrite with a predicate, :class:`CuratedBatch` ``replaces``):
    then its change feed names every key whose rows changed. An overwrite of the whole table (a
    full rebuild, an engine's commit, an erasure's rewrite) is a new table: read it whole."""
    if since > now:
        return False
    try:
        table = DeltaTable(lake.table_uri(zone, name), storage_options=lake.storage_options())
        commits = [c for c in table.history(now - since + 1) if since < c["version"] <= now]
    except (DeltaError, OSError):
        return False
    if len(commits) != now - since:
        return False
    return all(names_its_keys(c) for c in commits)


def names_its_keys(commit: Mapping) -> bool:
    """A commit whose change feed names every key it changed (see :func:`only_merged`)."""
    if ERASURE_COMMIT in commit:  # its rows go through the warehouse's own erasure, not a feed
        return False
    if commit.get("operation") == "MERGE":
        return True
    parameters = commit.get("operationParameters", {})
    mode = parameters.get("mode") if commit.get("operation") == "WRITE" else None
    # delta-rs writes the change rows of a predicate overwrite (deleted and inserted rows).
    return mode == "Append" or (mode == "Overwrite" and bool(parameters.get("predicate")))
