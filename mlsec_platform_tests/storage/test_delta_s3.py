"""DeltaLakeS3IOManager: one commit per output, its version as metadata and data version;
the run's own commits read back from memory."""

import dagster as dg
import pyarrow as pa
import pyarrow.dataset as ds
import pytest
from deltalake import DeltaTable, write_deltalake

from mlsec_platform.defs.reference.assets import br_states, br_states_complete
from mlsec_platform.defs.resources import build_resources
from mlsec_platform.resources.committed import CommittedTables
from mlsec_platform.resources.s3_lake import S3LakeResource
from mlsec_platform.settings import Zone
from mlsec_platform.storage.incremental import CuratedBatch
from mlsec_platform.storage.snapshots import read_snapshot
from mlsec_platform_tests.helpers import error_chain


@pytest.fixture(scope="module")
def resources(settings, supervisor):
    return build_resources(settings)


def _materialization(result: dg.ExecuteInProcessResult, key: str) -> dg.AssetMaterialization:
    [event] = [
        e for e in result.get_asset_materialization_events() if e.asset_key.to_user_string() == key
    ]
    return event.event_specific_data.materialization


def test_materialization_records_version_rows_and_uri(resources):
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize([br_states, br_states_complete], resources=resources, instance=instance)
    assert result.success
    mat = _materialization(result, "silver/br_states")
    uri = mat.metadata["table_uri"].value
    lake = resources["lake_pipeline"]
    table = DeltaTable(uri, storage_options=lake.storage_options())
    assert uri == "s3://mlsec-silver/br_states"
    assert mat.metadata["delta_version"].value == table.version()
    assert mat.metadata["dagster/row_count"].value == 27 == table.to_pyarrow_table().num_rows
    assert mat.tags["dagster/data_version"] == str(table.version())
    history = table.history(1)[0]
    assert history["mlsec.run_id"] == result.run_id

    again = dg.materialize([br_states], resources=resources, instance=instance)
    second = _materialization(again, "silver/br_states")
    assert second.metadata["delta_version"].value == table.version() + 1
    reread = DeltaTable(uri, storage_options=lake.storage_options()).to_pyarrow_table()
    assert reread.sort_by("ibge_code").equals(br_states().sort_by("ibge_code"))  # idempotent


def test_asset_keys_must_name_a_zone(resources):
    @dg.asset(key=["nowhere", "table"], io_manager_key="lakehouse_io_manager")
    def misplaced() -> pa.Table:
        return pa.table({"a": [1]})

    result = dg.materialize([misplaced], resources=resources, raise_on_error=False)
    assert not result.success
    assert (
        "must be keyed [<zone>, <name>]"
        in result.get_step_failure_events()[0].step_failure_data.error.message
    )


def test_storage_refuses_a_zone_outside_the_identity(resources):
    """The connector identity (raw_io_manager) cannot write silver: S3 itself says no."""

    @dg.asset(key=["silver", "connector_was_here"], io_manager_key="raw_io_manager")
    def intruder() -> pa.Table:
        return pa.table({"a": [1]})

    result = dg.materialize([intruder], resources=resources, raise_on_error=False)
    assert not result.success
    error = result.get_step_failure_events()[0].step_failure_data.error
    assert any("<Code>AccessDenied</Code>" in e.message for e in error_chain(error))
    lake = resources["lake_pipeline"]
    with pytest.raises(Exception):  # noqa: B017 - any "table not found" error from delta-rs
        DeltaTable(
            lake.table_uri(Zone.SILVER, "connector_was_here"),
            storage_options=lake.storage_options(),
        )


def test_a_run_reads_its_own_commit_from_memory_and_anything_newer_from_storage(resources):
    lake = resources["lake_pipeline"]
    uri = lake.table_uri(Zone.SILVER, "committed_probe")
    seen: dict[str, object] = {}
    rows = pa.table(
        {
            "id": pa.array([3, 1, 2], pa.int64()),
            "at": pa.array([0, 1, 2], pa.timestamp("us", tz="UTC")),
            "name": ["c", "a", "b"],
        }
    )

    @dg.asset(key=["silver", "committed_probe"], io_manager_key="lakehouse_io_manager")
    def probe() -> pa.Table:
        return rows

    @dg.asset(deps=[probe])
    def reader(lake_pipeline: S3LakeResource) -> None:
        first = read_snapshot(lake_pipeline, Zone.SILVER, "committed_probe")
        seen["first"] = (isinstance(first.dataset, ds.InMemoryDataset), first.table)
        # Another commit lands between this run's commit and its next read.
        write_deltalake(
            uri, rows.slice(0, 1), mode="overwrite", storage_options=lake_pipeline.storage_options()
        )
        second = read_snapshot(lake_pipeline, Zone.SILVER, "committed_probe")
        seen["second"] = (isinstance(second.dataset, ds.InMemoryDataset), second.table)
        seen["cached"] = len(lake_pipeline.committed)

    assert dg.materialize([probe, reader], resources=resources).success
    in_memory, table = seen["first"]
    version = DeltaTable(uri, storage_options=lake.storage_options(), version=0)
    assert in_memory and seen["cached"] == 1
    assert table.equals(pa.table(version.to_pyarrow_table()))  # what the files decode to
    in_memory, table = seen["second"]
    assert not in_memory and table.num_rows == 1
    assert len(lake.committed) == 0  # emptied when the run ended


def test_committed_tables_are_bounded_in_bytes_and_keep_one_version_per_table():
    small = pa.table({"a": pa.array(range(1000), pa.int64())})  # 8000 bytes
    cache = CommittedTables(max_bytes=20_000)
    cache.remember("s3://z/a", 0, small)
    cache.remember("s3://z/a", 1, small)
    assert cache.get("s3://z/a", 0) is None and cache.get("s3://z/a", 1) is small
    cache.remember("s3://z/b", 0, small)
    assert cache.get("s3://z/a", 1) is small  # a is now the most recently used
    cache.remember("s3://z/c", 0, small)  # over the bound: b goes
    assert cache.get("s3://z/b", 0) is None
    assert cache.get("s3://z/a", 1) is small and cache.get("s3://z/c", 0) is small
    assert cache.nbytes == 16_000
    cache.remember("s3://z/big", 0, pa.concat_tables([small] * 3))  # larger than the bound
    assert cache.get("s3://z/big", 0) is None and cache.nbytes <= 20_000
    assert cache.get("s3://z/a", None) is None


def test_curated_tables_keep_the_configured_history(resources, settings):
    lake = resources["lake_pipeline"]
    uri = lake.table_uri(Zone.SILVER, "history_probe")
    options = lake.storage_options()
    # A table made before the setting existed: no retention properties.
    write_deltalake(uri, pa.table({"a": [1]}), mode="overwrite", storage_options=options)
    assert (
        "delta.logRetentionDuration"
        not in DeltaTable(uri, storage_options=options).metadata().configuration
    )

    @dg.asset(key=["silver", "history_probe"], io_manager_key="lakehouse_io_manager")
    def history_probe() -> pa.Table:
        return pa.table({"a": [2]})

    for _ in range(2):  # the second write finds the properties set and commits nothing more
        assert dg.materialize([history_probe], resources=resources).success
    table = DeltaTable(uri, storage_options=options)
    days = f"interval {settings.delta_history_retention_days} days"
    config = table.metadata().configuration
    assert (
        config["delta.logRetentionDuration"] == config["delta.deletedFileRetentionDuration"] == days
    )
    assert [h["operation"] for h in table.history(3)] == ["WRITE", "SET TBLPROPERTIES", "WRITE"]


def test_a_merge_of_new_keys_appends_and_one_of_known_keys_merges(resources):
    """A keyed batch whose keys the table holds none of is appended (the MERGE would only
    insert them); one that holds a known key is merged: its row updated, none doubled."""
    batches = iter(
        [
            CuratedBatch(pa.table({"k": ["a", "b"], "v": [1, 2]})),
            CuratedBatch(pa.table({"k": ["c", "d"], "v": [3, 4]}), replaces="k", merge=True),
            CuratedBatch(pa.table({"k": ["b", "e"], "v": [20, 5]}), replaces="k", merge=True),
        ]
    )

    @dg.asset(key=["silver", "merge_probe"], io_manager_key="lakehouse_io_manager")
    def merge_probe() -> CuratedBatch:
        return next(batches)

    lake = resources["lake_pipeline"]
    uri = lake.table_uri(Zone.SILVER, "merge_probe")
    operations = []
    for _ in range(3):
        assert dg.materialize([merge_probe], resources=resources).success
        operations.append(DeltaTable(uri, storage_options=lake.storage_options()).history(1))
    assert [h[0]["operation"] for h in operations[1:]] == ["WRITE", "MERGE"]
    rows = DeltaTable(uri, storage_options=lake.storage_options()).to_pyarrow_table()
    assert sorted(zip(rows["k"].to_pylist(), rows["v"].to_pylist(), strict=True)) == [
        ("a", 1),
        ("b", 20),
        ("c", 3),
        ("d", 4),
        ("e", 5),
    ]
