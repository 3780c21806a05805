"""Incremental curation on the Spark engine: the same decisions as on DuckDB
(``storage/incremental.py``), with every row kept on the engine.

1. The keys a run recomputes: the engine reads exactly the Parquet files Raw gained since the
   version the table's last commit recorded (their paths come from the Delta log,
   :func:`~mlsec_platform.storage.incremental.added_paths`), only the grouping column
   (:func:`added_groups`); this process gets two counts back, to send a NULL key or too many
   keys to a full rebuild as DuckDB does.
2. The transform runs over every Raw row of those groups (a semi-join on the engine), so
   deduplication and tokens are those of a full build.
3. The replace (:func:`replacement`): the new rows are written once beside the staged table
   (the transform and its tokens computed once), the files of the table's pinned version that
   hold a row of a replaced key are found on the engine, each file read on its own (Sail has no
   ``input_file_name``); the staged result is the new rows plus the other rows of those files,
   and the commit removes those files and adds the staged ones, in one Delta version
   (``storage/engine_tables.py``). Files without a replaced key stay as they are, so the change
   feed names the rewritten files' rows only, as a file-level copy-on-write MERGE would.

The keys replaced are the new rows' values of the grouping column, as DuckDB's predicate
overwrite takes them, so either engine can write the next version of a table the other made.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import reduce
from typing import TYPE_CHECKING
from urllib.parse import unquote

import pyarrow as pa
from deltalake import DeltaTable

from mlsec_platform.catalog.governance import DatasetSpec
from mlsec_platform.resources.s3_lake import S3LakeResource
from mlsec_platform.settings import Zone
from mlsec_platform.storage.engine_tables import (
    StagedTable,
    engine_frame,
    pin,
    stage,
    staged_actions,
    staged_rows,
)
from mlsec_platform.storage.incremental import MAX_REPLACED_KEYS, added_paths
from mlsec_platform.storage.snapshots import Snapshot

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

#: Most files of a table the search for replaced keys reads one by one; a table of more files
#: is rewritten whole (one query over many single-file reads grows with the file count).
MAX_SEARCHED_FILES = 256
FILE_COLUMN = "_mlsec_file"


@dataclass(frozen=True)
class Replacement:
    """What an incremental commit on the engine writes and which files of the table it drops."""

    #: The new rows of the replaced keys and the other rows of the files dropped.
    frame: DataFrame
    #: Paths (relative to the table's root) of the pinned version's files the commit removes.
    removes: tuple[str, ...]
    #: How many rows the replaced keys have now (the new rows).
    rows: int
    #: The new rows, written once under the table's root so the engine computes them once
    #: (``frame`` reads them back); deleted after the commit. None: they did not fit the
    #: catalog types, and the gate's own staging fails the same way and quarantines the batch.
    scratch: StagedTable | None = None


def file_uri(table_uri: str, path: str) -> str:
    """A data file's address from its Delta log path (URI-encoded there)."""
    return f"{table_uri}/{unquote(path)}"


def added_groups(
    spark: SparkSession, lake: S3LakeResource, source: str, paths: list[str], column: str
) -> DataFrame:
    """``column`` of the rows in ``paths``, the files Raw gained, read on the engine.

    Raw is partitioned by batch, so the files lack ``_batch_id``; the grouping column is in
    every file."""
    from mlsec_platform.transforms.spark import local_frame

    if not paths:
        return local_frame(spark, pa.table({column: pa.array([], pa.string())}))
    uri = lake.table_uri(Zone.RAW, source)
    return spark.read.parquet(*(file_uri(uri, p) for p in paths)).select(column)


def group_counts(groups: DataFrame, column: str) -> tuple[int, int]:
    """(rows without a group, distinct groups), counted on the engine."""
    from mlsec_platform.transforms.spark import quoted

    name = quoted(column)
    [(nulls, distinct)] = groups.selectExpr(
        f"coalesce(sum(CASE WHEN {name} IS NULL THEN 1 ELSE 0 END), 0)",
        f"count(DISTINCT {name})",
    ).collect()
    return int(nulls), int(distinct)


def rows_of_groups(raw: DataFrame, groups: DataFrame, column: str) -> DataFrame:
    """Every row of ``raw`` (all batches) in a group ``groups`` has a row in (as
    ``transforms.silver.rows_of_groups`` on DuckDB)."""
    return raw.join(groups.distinct(), on=column, how="left_semi")


def table_files(lake: S3LakeResource, target: Snapshot) -> list[str] | None:
    """The data files of the pinned version, or None when they cannot be rewritten one by one
    (no version yet, or a partitioned table)."""
    if target.version is None:
        return None
    table = DeltaTable(target.uri, storage_options=lake.storage_options(), version=target.version)
    if table.metadata().partition_columns:
        return None
    return pa.table(table.get_add_actions(flatten=True)).column("path").to_pylist()


def replacement(
    spark: SparkSession,
    lake: S3LakeResource,
    spec: DatasetSpec,
    target: Snapshot,
    new: DataFrame,
    column: str,
    files: list[str],
) -> Replacement:
    """The staged rows and removed files that replace the rows of ``new``'s values of
    ``column`` in the pinned ``target`` with ``new`` (see the module)."""
    from pyspark.sql import functions as F

    from mlsec_platform.transforms.spark import VALUE_ERRORS, catalog_casts, conformed

    new = conformed(new, spec)
    try:  # the transform and its tokens computed once, not for each use below
        scratch = stage(new, target.uri, spec.arrow_schema())
    except VALUE_ERRORS:
        return Replacement(new, (), 0)
    new = spark.read.format("delta").load(scratch.staging_uri)
    keys = new.select(column).distinct()
    casts = catalog_casts(spec)  # files of either engine's writer read as the catalog types
    removes, rest = (), None
    if len(files) > MAX_SEARCHED_FILES:
        removes, rest = tuple(files), engine_frame(spark, target).selectExpr(*casts)
    elif files:
        each = {p: spark.read.parquet(file_uri(target.uri, p)).selectExpr(*casts) for p in files}
        marked = [f.select(column).withColumn(FILE_COLUMN, F.lit(p)) for p, f in each.items()]
        found = _union(marked).join(keys, on=column, how="left_semi").select(FILE_COLUMN)
        removes = tuple(sorted(r[0] for r in found.distinct().collect()))
        rest = _union([each[p] for p in removes]) if removes else None
    frame = new
    if rest is not None:
        frame = new.unionByName(rest.join(keys, on=column, how="left_anti").select(*new.columns))
    return Replacement(frame, removes, staged_rows(staged_actions(lake, scratch)), scratch)


def _union(frames: list[DataFrame]) -> DataFrame:
    return reduce(lambda a, b: a.unionByName(b), frames)


@dataclass(frozen=True)
class EngineIncrement:
    """An incremental Silver run on the engine: the Raw rows it transforms and what it
    replaces; :meth:`replace` turns the transform's result into the staged rows."""

    #: Every Raw row of the groups the added files touch (the transform's ``raw`` view).
    raw: DataFrame
    target: Snapshot
    files: list[str]
    #: The Silver column whose values' rows are replaced.
    column: str

    def replace(
        self, spark: SparkSession, lake: S3LakeResource, spec: DatasetSpec, new: DataFrame
    ) -> Replacement:
        """The staged rows and removed files of the transform's result ``new``."""
        return replacement(spark, lake, spec, self.target, new, self.column, self.files)


def increment_on_engine(
    spark: SparkSession,
    lake: S3LakeResource,
    spec: DatasetSpec,
    raw: Snapshot,
    source: str,
    group: tuple[str, str],
    since: int,
) -> EngineIncrement | None:
    """The increment of a run whose table last read Raw at ``since``, or None when the table
    is rebuilt in full instead (Raw did more than gain files, a new row has no group, more
    groups changed than one commit replaces, or the table's files cannot be rewritten one by
    one)."""
    if raw.version is None:
        return None
    paths = added_paths(lake, Zone.RAW, source, since, raw.version)
    if paths is None:
        return None
    raw_column, silver_column = group
    groups = added_groups(spark, lake, source, paths, raw_column)
    nulls, distinct = group_counts(groups, raw_column)
    if nulls or distinct > MAX_REPLACED_KEYS:  # as ``too_many`` on DuckDB
        return None
    target = pin(lake, spec.zone, spec.name)
    files = table_files(lake, target)
    if files is None:
        return None
    rows = rows_of_groups(engine_frame(spark, raw), groups, raw_column)
    return EngineIncrement(rows, target, files, silver_column)
