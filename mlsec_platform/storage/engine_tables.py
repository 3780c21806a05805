"""Zone tables read and written by the Spark engine, committed from here as one Delta version.

Nothing of a table passes through the Dagster process on the Spark engine. The protocol:

1. Inputs are pinned here (their Delta version read from the log, nothing else) and read on
   the engine at exactly that version (``versionAsOf``); the versions go into lineage.
2. The engine writes the result as a staging Delta table under the target table's root,
   ``<table>/_staged/<write id>/`` (the engine's own writer makes the Parquet files and their
   statistics). Staged files are in no version of the target table: no reader sees them.
3. The gate runs as engine SQL over the staged table (``quality/engine_gate.py``).
4. Passed: this process commits ONE version of the target table that adds the staged files
   (``DeltaTable.create_write_transaction``, overwrite: the previous files are removed in the
   same commit), with the add actions taken verbatim from the staging table's log: paths made
   relative to the target root, sizes and statistics as the engine wrote them. The commit is a
   conditional PUT like every delta-rs commit; a run that dies before it leaves only staged
   files, which no version references. Failed: the staged prefix is deleted, nothing is
   committed. An incremental run's staged table names the files it replaces
   (``StagedTable.removes``, ``storage/engine_incremental.py``): its commit removes those and
   adds the staged ones, every other file stays.

Why not let the engine write the target table itself: its commit would make the rows visible
before the gate ran. Why not stage Parquet alone: the staging table's log already holds each
file's size and statistics, so the commit carries file skipping statistics without a footer
read here.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc
from deltalake import CommitProperties, DeltaTable
from deltalake.exceptions import TableNotFoundError
from deltalake.transaction import AddAction, RemoveAction, create_table_with_add_actions

from mlsec_platform.errors import MlsecError
from mlsec_platform.quality.gates import QualityGate
from mlsec_platform.resources.s3_lake import S3LakeResource
from mlsec_platform.settings import Zone
from mlsec_platform.storage.commits import committed_version
from mlsec_platform.storage.snapshots import Snapshot, read_snapshot

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

STAGED_DIR = "_staged"


class ConcurrentWrite(MlsecError):
    """Another writer changed the table while this run computed its replacement; run again."""

    http_status = 409


@dataclass(frozen=True)
class StagedTable:
    """A result the engine wrote under ``uri``'s root, not yet part of any version."""

    uri: str
    write_id: str
    schema: pa.Schema
    #: Files of the target's current version the commit removes, its other files kept
    #: (``storage/engine_incremental.py``); None: the commit replaces every file (overwrite).
    removes: tuple[str, ...] | None = None

    @property
    def relative(self) -> str:
        return f"{STAGED_DIR}/{self.write_id}"

    @property
    def staging_uri(self) -> str:
        return f"{self.uri}/{self.relative}"


def pin(lake: S3LakeResource, zone: Zone, name: str, schema: pa.Schema | None = None) -> Snapshot:
    """The table's current version (its log is read, no data); missing: empty ``schema``."""
    return read_snapshot(lake, zone, name, schema=schema)


def engine_frame(spark: SparkSession, snapshot: Snapshot) -> DataFrame:
    """The snapshot read on the engine at its pinned version (an empty table: its schema)."""
    if snapshot.version is None:
        from mlsec_platform.transforms.spark import local_frame

        return local_frame(spark, snapshot.dataset.schema.empty_table())
    reader = spark.read.format("delta").option("versionAsOf", snapshot.version)
    return reader.load(snapshot.uri)


def register(spark: SparkSession, views: dict[str, Snapshot | DataFrame]) -> None:
    """Each snapshot (or frame on the engine) as a temporary view of that name on the engine."""
    for name, view in views.items():
        frame = engine_frame(spark, view) if isinstance(view, Snapshot) else view
        frame.createOrReplaceTempView(name)


def stage(frame: DataFrame, uri: str, schema: pa.Schema) -> StagedTable:
    """Write ``frame`` (already of the catalog's types) as a staging table under ``uri``."""
    write_id = uuid.uuid4().hex
    staged = StagedTable(uri, write_id, schema)
    frame.write.format("delta").save(staged.staging_uri)
    return staged


def staged_actions(lake: S3LakeResource, staged: StagedTable) -> list[AddAction]:
    """The staging table's add actions, paths relative to the target table's root."""
    bucket, prefix = _bucket_key(staged.staging_uri)
    client = lake.client()
    log = client.get_object(Bucket=bucket, Key=f"{prefix}/_delta_log/{0:020d}.json")
    actions = []
    for line in log["Body"].read().decode().splitlines():
        add = json.loads(line).get("add") if line.strip() else None
        if add is None:
            continue
        actions.append(
            AddAction(
                path=f"{staged.relative}/{add['path']}",
                size=int(add["size"]),
                partition_values=add.get("partitionValues") or {},
                modification_time=int(add["modificationTime"]),
                data_change=True,
                stats=add.get("stats") or "{}",
            )
        )
    return actions


def staged_rows(actions: list[AddAction]) -> int:
    return sum(int(json.loads(a.stats or "{}").get("numRecords", 0)) for a in actions)


def commit_staged(
    lake: S3LakeResource,
    staged: StagedTable,
    metadata: dict[str, str],
    configuration: dict[str, str] | None = None,
) -> tuple[int, int]:
    """One version of the target table holding exactly the staged files, or (``removes``) its
    files but those plus the staged ones; (version, the table's rows after it).
    ``configuration``: the table properties of a table this commit creates."""
    actions = staged_actions(lake, staged)
    options = lake.storage_options()
    properties = CommitProperties(custom_metadata=metadata)
    try:
        table = DeltaTable(staged.uri, storage_options=options)
    except TableNotFoundError:
        table = None
    if table is None and staged.removes is not None:
        raise ConcurrentWrite(f"{staged.uri} was removed while this run replaced its rows")
    if table is None:
        create_table_with_add_actions(
            staged.uri,
            _delta_schema(staged.schema),
            actions,
            mode="error",
            configuration=configuration,
            storage_options=options,
            commit_properties=properties,
        )
    elif staged.removes is None:
        table.create_write_transaction(
            actions, mode="overwrite", schema=staged.schema, commit_properties=properties
        )
    else:  # the files it replaces go, every other file stays
        table.create_write_transaction(
            [*removed_files(table, staged.removes), *actions],
            mode="append",
            schema=staged.schema,
            commit_properties=properties,
        )
    table = DeltaTable(staged.uri, storage_options=options)
    version = committed_version(table, "mlsec.write_id", metadata["mlsec.write_id"])
    if staged.removes is None:
        return version, staged_rows(actions)
    counts = pa.table(table.get_add_actions(flatten=True)).column("num_records")
    return version, int(pc.sum(counts).as_py() or 0)


def removed_files(table: DeltaTable, paths: tuple[str, ...]) -> list[RemoveAction]:
    """Remove actions of ``paths``, files of the table's current version (a file already gone
    means another writer moved the table: nothing is committed)."""
    added = pa.table(table.get_add_actions(flatten=True)).select(["path", "size_bytes"])
    sizes = dict(zip(*(added.column(c).to_pylist() for c in added.column_names), strict=True))
    missing = sorted(set(paths) - set(sizes))
    if missing:
        raise ConcurrentWrite(f"{table.table_uri}: files {missing[:3]} left the table meanwhile")
    now = int(time.time() * 1000)
    return [RemoveAction(p, True, now, sizes[p], {}) for p in paths]


def discard(lake: S3LakeResource, staged: StagedTable) -> int:
    """Delete the staged files and their log; returns how many objects went."""
    bucket, prefix = _bucket_key(staged.staging_uri)
    client = lake.client()
    deleted = 0
    for page in client.get_paginator("list_objects_v2").paginate(
        Bucket=bucket, Prefix=prefix + "/"
    ):
        keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
        if keys:
            client.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})
            deleted += len(keys)
    return deleted


def _delta_schema(schema: pa.Schema):
    from deltalake import Schema

    return Schema.from_arrow(schema)


def _bucket_key(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key.rstrip("/")


def gated_on_engine(
    context: dg.AssetExecutionContext,
    gate: QualityGate,
    spark: SparkSession,
    frame: DataFrame,
    lake: S3LakeResource,
    *,
    metadata: dict[str, Any],
    measures: dict[str, str] | None = None,
    output: Callable[[StagedTable], Any] | None = None,
    **params: Any,
) -> Iterator[dg.Output | dg.AssetCheckResult]:
    """``frame`` (the transform's result on the engine) staged under its table, cast to the
    catalog's types, through the gate on the engine: the asset's output is the staged table
    (or what ``output`` makes of it), which the IO manager commits as one version; on any
    failure the staged files are deleted and nothing is committed."""
    from mlsec_platform.transforms.spark import VALUE_ERRORS, conformed  # only on Spark

    spec = gate.spec
    uri = lake.table_uri(spec.zone, spec.name)
    try:
        staged = stage(conformed(frame, spec), uri, spec.arrow_schema())
    except VALUE_ERRORS as exc:
        empty = spec.arrow_schema().empty_table()
        why = f"does not fit the catalog types: {exc}"
        yield from gate.quarantine_and_fail(context, lake, empty, 0, [], why)
    view = f"staged_{staged.write_id}"
    spark.read.format("delta").load(staged.staging_uri).createOrReplaceTempView(view)
    try:
        yield from gate.commit_on_engine(
            context,
            spark,
            view,
            staged if output is None else output(staged),
            lake,
            metadata=metadata,
            measures=measures,
            **params,
        )
    except BaseException:
        discard(lake, staged)
        raise
    finally:
        spark.catalog.dropTempView(view)


def transform_on_engine(
    context: dg.AssetExecutionContext,
    gate: QualityGate,
    spark: SparkSession,
    sql: str,
    inputs: dict[str, Snapshot | DataFrame],
    lake: S3LakeResource,
    *,
    metadata: dict[str, Any],
    local: dict[str, pa.Table] | None = None,
    finish: Callable[[DataFrame], DataFrame] | None = None,
    measures: dict[str, str] | None = None,
    output: Callable[[StagedTable], Any] | None = None,
    **params: Any,
) -> Iterator[dg.Output | dg.AssetCheckResult]:
    """``sql`` (Spark dialect) over ``inputs`` (view name -> snapshot, or a frame already on the
    engine) read on the engine at their pinned versions and the small ``local`` tables sent
    with the query, then ``finish`` on its result; gated and staged on the engine."""
    snapshots = dict(inputs)
    register(spark, snapshots)
    from mlsec_platform.transforms.spark import local_frame

    for name, table in (local or {}).items():
        local_frame(spark, table).createOrReplaceTempView(name)
    try:
        frame = spark.sql(sql)
        if finish is not None:
            frame = finish(frame)
        yield from gated_on_engine(
            context,
            gate,
            spark,
            frame,
            lake,
            metadata=metadata,
            measures=measures,
            output=output,
            **params,
        )
    finally:
        for name in [*snapshots, *(local or {})]:
            spark.catalog.dropTempView(name)
