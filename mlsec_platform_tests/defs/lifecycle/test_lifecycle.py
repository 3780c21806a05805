"""Raw batches past retention move to Cold and back: atomic, idempotent, audited, and only the
lifecycle identity can delete in Raw. Batches enter Raw through the real file connector."""

import time
import uuid
from datetime import UTC, datetime

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from deltalake import DeltaTable
from deltalake.exceptions import CommitFailedError

from mlsec_platform.defs.lifecycle.jobs import archive_raw, restore_raw
from mlsec_platform.defs.raw.files import RAW_FILE_ASSETS
from mlsec_platform.defs.resources import build_resources
from mlsec_platform.ops.drain import drain_landing
from mlsec_platform.settings import Zone
from mlsec_platform.storage import archive, sealing
from mlsec_platform.storage.raw_writer import open_table
from mlsec_platform_tests.helpers import (
    audit_events,
    audit_head,
    s3_admin,
    s3_as,
    s3_error_code,
    vault_as,
)

SOURCE = "olist_sellers"
ROWS = 2000


@pytest.fixture(scope="module")
def resources(settings, supervisor):
    return build_resources(settings)


@pytest.fixture(scope="module")
def lake(resources):
    return resources["lake_lifecycle"]


@pytest.fixture(scope="module")
def instance():
    return dg.DagsterInstance.ephemeral()


@pytest.fixture(scope="module")
def admin(supervisor, settings):
    return s3_admin(supervisor, settings)


@pytest.fixture
def ingest(gateway, uploader, resources, instance):
    """Upload a small, unique sellers file through the gateway and run its connector."""

    def _ingest() -> str:
        tag = uuid.uuid4().hex[:8]
        lines = ["seller_id,seller_zip_code_prefix,seller_city,seller_state"]
        lines += [f"s-{tag}-{i:05d},{10000 + i},sao paulo,SP" for i in range(ROWS)]
        body = ("\n".join(lines) + "\n").encode()
        response = gateway.put(f"/v1/files/{SOURCE}", content=body, headers=uploader)
        assert response.status_code == 201, response.text
        batch = response.json()["batch_id"]
        runs = drain_landing(instance, resources, echo=lambda _: None)
        assert [r.metadata["rows"] for r in runs if r.partition == batch] == [ROWS]
        return batch

    return _ingest


def _table(lake, zone: Zone) -> DeltaTable | None:
    return open_table(lake.table_uri(zone, SOURCE), lake.storage_options())


def _rows(lake, zone: Zone, batch: str) -> pa.Table:
    table = _table(lake, zone)
    if table is None:
        return pa.table({})
    data = table.to_pyarrow_dataset().to_table(filter=pc.field("_batch_id") == batch)
    return data.sort_by("seller_id")


def _objects(admin, settings, zone: Zone, batch: str) -> list[str]:
    listing = admin.list_objects_v2(
        Bucket=settings.bucket(zone), Prefix=f"{SOURCE}/_batch_id={batch}/"
    )
    return [o["Key"] for o in listing.get("Contents", [])]


def _archive(resources, instance, batches, retention_days=0.0, raise_on_error=True):
    config = {"retention_days": retention_days, "sources": [SOURCE], "batch_ids": batches}
    return archive_raw.execute_in_process(
        run_config={"ops": {"archive_raw_batches": {"config": config}}},
        resources=resources,
        instance=instance,
        raise_on_error=raise_on_error,
    )


def _restore(resources, instance, batches, raise_on_error=True):
    config = {"source": SOURCE, "batch_ids": batches}
    return restore_raw.execute_in_process(
        run_config={"ops": {"restore_raw_batches": {"config": config}}},
        resources=resources,
        instance=instance,
        raise_on_error=raise_on_error,
    )


def _events(superuser_dsn, event_type, since, batch):
    return [e for e in audit_events(superuser_dsn, event_type, since) if e.get("batch_id") == batch]


@pytest.fixture
def archived(ingest, lake, resources, instance, admin, settings, superuser_dsn):
    """One batch taken through the archive job, with what Raw held before."""
    batch = ingest()
    before = _rows(lake, Zone.RAW, batch)
    objects = _objects(admin, settings, Zone.RAW, batch)
    head = audit_head(superuser_dsn)
    result = _archive(resources, instance, [batch])
    return {"batch": batch, "before": before, "objects": objects, "head": head, "result": result}


def test_archive_moves_a_batch_from_raw_to_cold(archived, lake, admin, settings, superuser_dsn):
    batch, before, result = archived["batch"], archived["before"], archived["result"]
    assert result.success and before.num_rows == ROWS and archived["objects"]
    assert _rows(lake, Zone.RAW, batch).num_rows == 0
    assert _objects(admin, settings, Zone.RAW, batch) == []
    for key in archived["objects"]:
        code = s3_error_code(
            lambda k=key: admin.head_object(Bucket=settings.bucket(Zone.RAW), Key=k)
        )
        assert code in ("404", "NoSuchKey"), key
    cold = _rows(lake, Zone.COLD, batch)
    assert cold.select(before.column_names).equals(before)

    raw = _table(lake, Zone.RAW)
    assert sealing.is_sealed(raw)
    [event] = _events(superuser_dsn, "lifecycle.archived", archived["head"], batch)
    assert event["source"] == SOURCE and event["rows"] == ROWS
    assert event["run_id"] == result.run_id and event["raw_objects"] == len(archived["objects"])
    assert event["already"] is False and event["recovered"] is False
    removal = next(h for h in raw.history(None) if h["version"] == event["raw_version"])
    assert removal["operation"] == "DELETE" and removal["mlsec.lifecycle"] == "archive"
    copy = next(
        h for h in _table(lake, Zone.COLD).history(None) if h["version"] == event["cold_version"]
    )
    assert copy["mlsec.batch_id"] == batch and copy["operation"] == "WRITE"

    [mat] = result.asset_materializations_for_node("archive_raw_batches")
    assert mat.asset_key == dg.AssetKey(["cold", SOURCE])
    assert mat.metadata["batch_id"].value == batch and mat.metadata["rows"].value == ROWS


def test_rerunning_the_archive_changes_nothing(archived, lake, resources, instance, superuser_dsn):
    batch = archived["batch"]
    raw_version, cold_version = _table(lake, Zone.RAW).version(), _table(lake, Zone.COLD).version()
    head = audit_head(superuser_dsn)
    again = _archive(resources, instance, [batch])
    assert again.success
    assert again.asset_materializations_for_node("archive_raw_batches") == []
    assert _table(lake, Zone.RAW).version() == raw_version
    assert _table(lake, Zone.COLD).version() == cold_version
    assert _rows(lake, Zone.COLD, batch).num_rows == ROWS
    assert _events(superuser_dsn, "lifecycle.archived", head, batch) == []


def test_restore_brings_back_identical_rows(
    archived, lake, resources, instance, admin, settings, superuser_dsn
):
    batch, before = archived["batch"], archived["before"]
    assert _objects(admin, settings, Zone.COLD, batch)
    head = audit_head(superuser_dsn)
    result = _restore(resources, instance, [batch])
    assert result.success
    restored = _rows(lake, Zone.RAW, batch)
    assert restored.select(before.column_names).equals(before)  # lineage columns included
    assert _rows(lake, Zone.COLD, batch).num_rows == 0
    assert _objects(admin, settings, Zone.COLD, batch) == []
    assert sealing.is_sealed(_table(lake, Zone.RAW))
    [event] = _events(superuser_dsn, "lifecycle.restored", head, batch)
    assert event["rows"] == ROWS and event["run_id"] == result.run_id
    assert event["already"] is False
    assert _table(lake, Zone.RAW).history(1)[0]["version"] >= event["raw_version"]

    # Idempotent: a second restore adds nothing.
    again = _restore(resources, instance, [batch])
    assert again.success and _rows(lake, Zone.RAW, batch).num_rows == ROWS
    # The connector sees the restored batch as committed: re-running it writes nothing.
    rerun = dg.materialize(
        [RAW_FILE_ASSETS[SOURCE]], partition_key=batch, instance=instance, resources=resources
    )
    mat = rerun.get_asset_materialization_events()[0].event_specific_data.materialization
    assert mat.metadata["already_committed"].value is True
    assert _rows(lake, Zone.RAW, batch).num_rows == ROWS


def test_restoring_a_batch_never_archived_fails_and_changes_nothing(lake, resources, instance):
    raw_version = _table(lake, Zone.RAW).version()
    result = _restore(resources, instance, ["no-such-batch"], raise_on_error=False)
    assert not result.success
    [failure] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert "BatchNotArchived" in str(failure.event_specific_data.error)
    assert _table(lake, Zone.RAW).version() == raw_version


def test_only_batches_past_the_retention_move(ingest, lake, resources, instance):
    old = ingest()
    middle = datetime.now(UTC)
    time.sleep(3)
    young = ingest()
    # Retention ends between the two batches.
    retention = (datetime.now(UTC) - middle).total_seconds() / 86400
    assert _archive(resources, instance, [old, young], retention_days=retention).success
    assert _rows(lake, Zone.RAW, old).num_rows == 0
    assert _rows(lake, Zone.COLD, old).num_rows == ROWS
    assert _rows(lake, Zone.RAW, young).num_rows == ROWS
    assert _rows(lake, Zone.COLD, young).num_rows == 0
    # The default retention (365 days) keeps it too.
    config = {"sources": [SOURCE], "batch_ids": [young]}
    result = archive_raw.execute_in_process(
        run_config={"ops": {"archive_raw_batches": {"config": config}}},
        resources=resources,
        instance=instance,
    )
    assert result.success and _rows(lake, Zone.RAW, young).num_rows == ROWS


@pytest.mark.parametrize("identity", ["connector", "pipeline"])
def test_other_identities_cannot_delete_raw(identity, ingest, lake, admin, settings, endpoints):
    batch = ingest()
    [key, *_] = _objects(admin, settings, Zone.RAW, batch)
    s3 = s3_as(identity, settings, endpoints)
    bucket = settings.bucket(Zone.RAW)
    assert s3_error_code(lambda: s3.delete_object(Bucket=bucket, Key=key)) == "AccessDenied"
    assert s3_error_code(lambda: admin.head_object(Bucket=bucket, Key=key)) is None
    if identity == "connector":
        # Raw's own writer obeys the append-only table: delta-rs refuses its DELETE.
        writer = DeltaTable(
            lake.table_uri(Zone.RAW, SOURCE),
            storage_options=_options(identity, settings, endpoints),
        )
        with pytest.raises(CommitFailedError, match="append-only"):
            writer.delete(f"_batch_id = '{batch}'")
    assert _rows(lake, Zone.RAW, batch).num_rows == ROWS


def _options(identity, settings, endpoints) -> dict[str, str]:
    vault = vault_as(identity, settings, endpoints)
    keys = vault.read_kv(f"s3/{identity}")
    vault.revoke()
    return {
        "AWS_ENDPOINT_URL": endpoints.s3_endpoint,
        "AWS_REGION": settings.s3_region,
        "AWS_ACCESS_KEY_ID": keys["access_key_id"],
        "AWS_SECRET_ACCESS_KEY": keys["secret_access_key"],
        "AWS_S3_ADDRESSING_STYLE": "path",
        "certificate_path": str(settings.server_ca("s3")),
    }


def test_a_run_killed_while_raw_was_writable_is_completed(
    ingest, lake, resources, instance, admin, settings, superuser_dsn
):
    batch = ingest()
    raw = _table(lake, Zone.RAW)
    [files] = [f for b, f in archive.inventory(raw).items() if b == batch]
    # Killed after copying to cold and lifting appendOnly, before the removal.
    archive.copy_to_cold(lake, SOURCE, raw, files, run_id="killed-run")
    raw.alter.set_table_properties({"delta.appendOnly": "false"})
    assert not sealing.is_sealed(_table(lake, Zone.RAW))
    head = audit_head(superuser_dsn)

    assert _archive(resources, instance, [batch]).success
    assert sealing.is_sealed(_table(lake, Zone.RAW))
    assert _rows(lake, Zone.RAW, batch).num_rows == 0
    assert _rows(lake, Zone.COLD, batch).num_rows == ROWS  # copied once, not twice
    assert _objects(admin, settings, Zone.RAW, batch) == []
    assert any(
        e["source"] == SOURCE for e in audit_events(superuser_dsn, "lifecycle.resealed", head)
    )
    [event] = _events(superuser_dsn, "lifecycle.archived", head, batch)
    assert event["already"] is True and event["recovered"] is False


def test_a_run_killed_before_deleting_raw_objects_is_completed(
    ingest, lake, resources, instance, admin, settings, superuser_dsn
):
    batch = ingest()
    raw = _table(lake, Zone.RAW)
    files = archive.inventory(raw)[batch]
    # Killed after the removal commit, before the audit event and the object deletion.
    archive.copy_to_cold(lake, SOURCE, raw, files, run_id="killed-run")
    version = sealing.remove_from_raw(raw, [batch], run_id="killed-run")
    assert _rows(lake, Zone.RAW, batch).num_rows == 0
    leftover = _objects(admin, settings, Zone.RAW, batch)
    assert leftover
    head = audit_head(superuser_dsn)

    assert _archive(resources, instance, [batch]).success
    assert _objects(admin, settings, Zone.RAW, batch) == []
    [event] = _events(superuser_dsn, "lifecycle.archived", head, batch)
    assert event["recovered"] is True and event["raw_version"] == version
    assert event["raw_objects"] == len(leftover)
    assert _rows(lake, Zone.COLD, batch).num_rows == ROWS


def test_a_second_lifecycle_run_refuses_to_start_beside_a_running_one(resources, instance):
    running = instance.create_run_for_job(
        archive_raw, tags={"mlsec/lifecycle": "raw"}, status=dg.DagsterRunStatus.STARTED
    )
    try:
        result = _archive(resources, instance, ["any"], raise_on_error=False)
        assert not result.success
        [failure] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
        assert "LifecycleBusy" in str(failure.event_specific_data.error)
        assert running.run_id in str(failure.event_specific_data.error)
    finally:
        instance.report_run_failed(running)


def test_the_jobs_are_in_the_code_location_and_not_scheduled(supervisor):
    from mlsec_platform.definitions import defs

    definitions = defs()
    for name in ("archive_raw", "restore_raw"):
        job = definitions.resolve_job_def(name)
        assert job.tags == {"mlsec/lifecycle": "raw"}
        [op] = job.nodes
        assert op.definition.required_resource_keys == {"lake_lifecycle"}
    scheduled = {s.job_name for s in definitions.schedules or []}
    assert not scheduled & {"archive_raw", "restore_raw"}
