"""Raw lifecycle jobs: ``archive_raw`` moves batches past retention to Cold, ``restore_raw``
brings chosen batches back. Both run as the ``lifecycle`` identity and audit every batch.

Neither is scheduled: an operator (or a schedule added on purpose) launches them. Retention
comes from ``MLSEC_RAW_RETENTION_DAYS`` (default 365) unless the run config sets
``retention_days``. How a move stays atomic and re-runnable is told in ``archive.py`` and
``sealing.py``.
"""

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import dagster as dg
from pydantic import Field

from mlsec_platform.resources.s3_lake import S3LakeResource
from mlsec_platform.settings import Zone, get_settings
from mlsec_platform.storage.archive import (
    BatchNotArchived,
    LifecycleError,
    Moved,
    UnknownSource,
    batches_past,
    copy_to_cold,
    copy_to_raw,
    inventory,
    removal_version,
    remove_from_cold,
)
from mlsec_platform.storage.commits import committed_version
from mlsec_platform.storage.raw_writer import open_table
from mlsec_platform.storage.sealing import remove_from_raw, seal
from mlsec_platform.storage.zone_objects import clear_folder, folder_keys, partition_folders

#: Every lifecycle run carries this tag; a run refuses to work while another one is active.
LIFECYCLE_TAGS = {"mlsec/lifecycle": "raw"}
_ACTIVE = [
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]


class LifecycleBusy(LifecycleError):
    """Another archive or restore run is in progress; moves of one batch must never overlap."""


class ArchiveRawConfig(dg.Config):
    retention_days: float | None = Field(
        default=None,
        ge=0,
        description="Archive batches older than this many days (default: the platform setting "
        "raw_retention_days). Fractions are allowed; 0 archives every batch.",
    )
    sources: list[str] | None = Field(
        default=None, description="Only these raw sources (default: every table in raw)."
    )
    batch_ids: list[str] | None = Field(
        default=None, description="Only these batches, still subject to the retention."
    )


class RestoreRawConfig(dg.Config):
    source: str = Field(description="The raw source the batches belong to.")
    batch_ids: list[str] = Field(min_length=1, description="Archived batches to bring back.")


def _ensure_alone(context: dg.OpExecutionContext) -> None:
    records = context.instance.get_run_records(dg.RunsFilter(tags=LIFECYCLE_TAGS, statuses=_ACTIVE))
    others = sorted(r.dagster_run.run_id for r in records if r.dagster_run.run_id != context.run_id)
    if others:
        raise LifecycleBusy(
            f"another raw lifecycle run is in progress ({', '.join(others)}): wait for it, or "
            f"mark it failed in Dagster if its process died, then run this again"
        )


def raw_sources(lake: S3LakeResource, wanted: list[str] | None) -> list[str]:
    """Every Delta table in the Raw bucket, or the ``wanted`` ones (each must exist)."""
    pages = (
        lake.client()
        .get_paginator("list_objects_v2")
        .paginate(Bucket=lake.bucket(Zone.RAW), Delimiter="/")
    )
    folders = {c["Prefix"].rstrip("/") for page in pages for c in page.get("CommonPrefixes", [])}
    if wanted is not None:
        unknown = sorted(set(wanted) - folders)
        if unknown:
            raise UnknownSource(f"no raw table for {', '.join(unknown)} in {lake.bucket(Zone.RAW)}")
        folders = set(wanted)
    options = lake.storage_options()
    return sorted(s for s in folders if open_table(lake.table_uri(Zone.RAW, s), options))


def _reseal(context: dg.OpExecutionContext, lake: S3LakeResource, source: str) -> None:
    if seal(lake, source, context.run_id):
        lake.audit.emit("lifecycle.resealed", {"source": source, "run_id": context.run_id})
        context.log.warning(f"raw/{source} was left writable by a killed run; sealed again")


def _finish_archived(
    context: dg.OpExecutionContext,
    lake: S3LakeResource,
    source: str,
    moved: list[Moved],
    only: set[str] | None = None,
) -> list[Moved]:
    """Audit the archived batches, then delete their objects from the Raw bucket.

    Also finishes the batches a killed run removed from the Raw log but not from the bucket
    (in Cold, not in Raw, objects left): audited again as ``recovered``. Auditing before
    deleting means an event may repeat after a kill, but is never missing.
    """
    options = lake.storage_options()
    raw = open_table(lake.table_uri(Zone.RAW, source), options)
    cold = open_table(lake.table_uri(Zone.COLD, source), options)
    in_raw, in_cold = inventory(raw), inventory(cold)
    folders = {
        batch: folder
        for batch, folder in partition_folders(lake, Zone.RAW, source).items()
        if batch not in in_raw and batch in in_cold and (only is None or batch in only)
    }
    keys = {batch: folder_keys(lake, Zone.RAW, folder) for batch, folder in folders.items()}
    moved = list(moved)
    done = {m.batch_id for m in moved}
    for batch in sorted(b for b in folders if keys[b] and b not in done):
        moved.append(
            Moved(
                source,
                batch,
                in_cold[batch].rows,
                raw_version=removal_version(raw, "archive", batch) if raw else None,
                cold_version=committed_version(cold, "mlsec.batch_id", batch, limit=None),
                already=True,
                recovered=True,
            )
        )
    for m in moved:
        payload = {**m.payload(context.run_id), "raw_objects": len(keys.get(m.batch_id, []))}
        lake.audit.emit("lifecycle.archived", payload)
    for batch, folder in folders.items():
        clear_folder(lake, Zone.RAW, folder, keys[batch])
    return [replace(m, files_deleted=len(keys.get(m.batch_id, []))) for m in moved]


def _delete_cold_orphans(lake: S3LakeResource, source: str) -> dict[str, int]:
    """Delete objects in Cold folders of batches the Cold log does not hold (restored batches,
    files of a copy killed before its commit); objects deleted per batch. Safe because only
    lifecycle runs, one at a time, write Cold."""
    cold = open_table(lake.table_uri(Zone.COLD, source), lake.storage_options())
    held = inventory(cold)
    deleted = {}
    for batch, folder in partition_folders(lake, Zone.COLD, source).items():
        if batch not in held:
            keys = folder_keys(lake, Zone.COLD, folder)
            clear_folder(lake, Zone.COLD, folder, keys)
            deleted[batch] = len(keys)
    return deleted


def _report(context: dg.OpExecutionContext, lake: S3LakeResource, moved: list[Moved], verb: str):
    for m in moved:
        context.log_event(
            dg.AssetMaterialization(
                asset_key=["cold", m.source],
                description=f"{m.source} batch {m.batch_id} {verb}",
                metadata={
                    "lifecycle": verb,
                    "batch_id": m.batch_id,
                    "rows": m.rows,
                    "raw_version": m.raw_version if m.raw_version is not None else -1,
                    "cold_version": m.cold_version if m.cold_version is not None else -1,
                    "already": m.already,
                    "recovered": m.recovered,
                    "files_deleted": m.files_deleted,
                    "table_uri": dg.MetadataValue.text(lake.table_uri(Zone.COLD, m.source)),
                },
            )
        )
    for source in sorted({m.source for m in moved}):
        mine = [m for m in moved if m.source == source]
        versions = [m.raw_version for m in mine if m.raw_version is not None]
        context.log_event(
            dg.AssetObservation(
                asset_key=["raw", source],
                description=f"{len(mine)} batch(es) {verb}",
                metadata={
                    "lifecycle": verb,
                    "batch_ids": dg.MetadataValue.json(sorted(m.batch_id for m in mine)),
                    "rows": sum(m.rows for m in mine),
                    "raw_version": max(versions) if versions else -1,
                },
            )
        )


@dg.op(tags=LIFECYCLE_TAGS)
def archive_raw_batches(
    context: dg.OpExecutionContext, config: ArchiveRawConfig, lake_lifecycle: S3LakeResource
) -> None:
    """Move every raw batch past retention to Cold: copy (one commit per batch), remove from
    Raw (one commit per source), delete its Raw objects, audit ``lifecycle.archived``."""
    _ensure_alone(context)
    lake = lake_lifecycle
    days = config.retention_days
    if days is None:
        days = get_settings().raw_retention_days
    cutoff = datetime.now(UTC) - timedelta(days=days)
    only = set(config.batch_ids) if config.batch_ids is not None else None
    everything: list[Moved] = []
    for source in raw_sources(lake, config.sources):
        _reseal(context, lake, source)
        raw = open_table(lake.table_uri(Zone.RAW, source), lake.storage_options())
        due = batches_past(raw, cutoff, only)
        copies = [copy_to_cold(lake, source, raw, batch, context.run_id) for batch in due]
        if copies:
            version = remove_from_raw(raw, [c.batch_id for c in copies], context.run_id)
            copies = [replace(c, raw_version=version) for c in copies]
        moved = _finish_archived(context, lake, source, copies, only)
        orphans = sum(_delete_cold_orphans(lake, source).values())
        if moved or orphans:
            context.log.info(
                f"{source}: {len(moved)} batch(es), {sum(m.rows for m in moved):,} rows archived; "
                f"{orphans} orphan object(s) deleted from cold"
            )
        everything += moved
    _report(context, lake, everything, "archived")
    context.log.info(
        f"archived {len(everything)} batch(es) older than {days:g} days (before {cutoff:%F %T}Z)"
    )


@dg.op(tags=LIFECYCLE_TAGS)
def restore_raw_batches(
    context: dg.OpExecutionContext, config: RestoreRawConfig, lake_lifecycle: S3LakeResource
) -> None:
    """Bring archived batches back to Raw with their original rows and lineage (one commit per
    batch), remove them from Cold (one commit), audit ``lifecycle.restored``."""
    _ensure_alone(context)
    lake = lake_lifecycle
    source, wanted = config.source, list(dict.fromkeys(config.batch_ids))
    options = lake.storage_options()
    cold = open_table(lake.table_uri(Zone.COLD, source), options)
    raw = open_table(lake.table_uri(Zone.RAW, source), options)
    if cold is None and raw is None:
        raise UnknownSource(f"no raw or cold table for {source}")
    _reseal(context, lake, source)
    # Finish any archive of these batches a killed run left half done, before adding to them.
    _finish_archived(context, lake, source, [], only=set(wanted))
    raw = open_table(lake.table_uri(Zone.RAW, source), options)
    in_cold, in_raw = inventory(cold), inventory(raw)
    missing = [b for b in wanted if b not in in_cold and b not in in_raw]
    if missing:
        raise BatchNotArchived(
            f"{source}: batch(es) {', '.join(missing)} are neither in cold nor in raw; "
            f"nothing was restored"
        )
    restored = []
    for batch in wanted:
        if batch in in_cold:
            restored.append(copy_to_raw(lake, source, cold, in_cold[batch], context.run_id))
        else:
            version = committed_version(raw, "mlsec.batch_id", batch, limit=None)
            restored.append(Moved(source, batch, in_raw[batch].rows, version, None, already=True))
    leaving = [b for b in wanted if b in in_cold]
    removed = remove_from_cold(cold, leaving, context.run_id) if leaving else None

    def cold_version(batch: str) -> int | None:
        if batch in leaving:
            return removed
        return removal_version(cold, "restore", batch) if cold is not None else None

    restored = [replace(m, cold_version=cold_version(m.batch_id)) for m in restored]
    for m in restored:
        lake.audit.emit("lifecycle.restored", m.payload(context.run_id))
    deleted = _delete_cold_orphans(lake, source)
    restored = [replace(m, files_deleted=deleted.get(m.batch_id, 0)) for m in restored]
    _report(context, lake, restored, "restored")
    context.log.info(
        f"{source}: {len(leaving)} batch(es) restored to raw, "
        f"{sum(deleted.values())} object(s) deleted from cold"
    )


@dg.job(
    name="archive_raw",
    tags=LIFECYCLE_TAGS,
    description="Move raw batches past retention to the cold zone (lifecycle identity).",
)
def archive_raw() -> None:
    archive_raw_batches()


@dg.job(
    name="restore_raw",
    tags=LIFECYCLE_TAGS,
    description="Bring archived raw batches back from the cold zone (lifecycle identity).",
)
def restore_raw() -> None:
    restore_raw_batches()


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions(jobs=[archive_raw, restore_raw])
