"""DeltaLakeS3IOManager: one commit per output, its version as metadata and data version."""

import dagster as dg
import pyarrow as pa
import pytest
from deltalake import DeltaTable

from mlsec_platform.defs.reference.assets import br_states, br_states_complete
from mlsec_platform.resources import build_resources
from mlsec_platform.runtime.settings import Zone
from mlsec_platform_tests.helpers import error_chain


@pytest.fixture(scope="module")
def resources(settings, supervisor):
    return build_resources(settings)


def _materialization(result: dg.ExecuteInProcessResult, key: str) -> dg.AssetMaterialization:
    [event] = [
        e for e in result.get_asset_materialization_events()
        if e.asset_key.to_user_string() == key
    ]  # fmt: skip
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
