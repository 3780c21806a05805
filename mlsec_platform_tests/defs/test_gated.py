"""Rule-family checks run on their own, against the committed table, and show in the event log.

On the incremental stack (``defs/curated/test_incremental.py``; the tables it compares are read
when it is built, so what this test commits moves nothing they see): a job that selects only
checks computes and commits nothing, and reports each selected family on the table's latest
Delta version. A row committed outside the asset that breaks a rule (a duplicate key) makes
exactly that family fail, with its failing rows and sample rows in the metadata, as the
instance's event log records them.
"""

from __future__ import annotations

import dagster as dg
import pyarrow as pa
from deltalake import DeltaTable, write_deltalake

from mlsec_platform.catalog.datasets import CATALOG
from mlsec_platform.quality.families import FAMILIES

DATASETS = ("silver/sellers", "gold/fact_order_item", "features/customer_rfm")


def check_keys(dataset_id: str) -> list[dg.AssetCheckKey]:
    key = dg.AssetKey(list(CATALOG[dataset_id].asset_path))
    return [dg.AssetCheckKey(key, name) for name in FAMILIES]


def run_checks(stack, *keys: dg.AssetCheckKey) -> dg.ExecuteInProcessResult:
    """A run of the checks alone. A blocking check that fails fails its step (and the run)."""
    from mlsec_platform.definitions import defs

    job = dg.define_asset_job("checks_alone", selection=dg.AssetSelection.checks(*keys))
    definitions = dg.Definitions.merge(defs(), dg.Definitions(jobs=[job]))
    result = definitions.resolve_job_def("checks_alone").execute_in_process(
        instance=stack.instance, raise_on_error=False
    )
    assert result.get_asset_materialization_events() == []  # the checks alone ran
    return result


def latest(stack, key: dg.AssetCheckKey):
    """The check's latest evaluation as the instance's event log holds it, and its run."""
    record = stack.instance.event_log_storage.get_latest_asset_check_execution_by_key([key])[key]
    return record.event.dagster_event.event_specific_data, record.run_id


def test_family_checks_run_alone_on_the_committed_version(on_incremental_stack):
    stack = on_incremental_stack
    keys = [k for d in DATASETS for k in check_keys(d)]
    run = run_checks(stack, *keys)
    assert run.success
    lake = stack.resources["lake_pipeline"]
    for key in keys:
        evaluation, run_id = latest(stack, key)
        assert run_id == run.run_id
        assert evaluation.passed, (key, evaluation.metadata)
        spec = CATALOG["/".join(key.asset_key.path)]
        uri = lake.table_uri(spec.zone, spec.name)
        table = DeltaTable(uri, storage_options=lake.storage_options())
        assert evaluation.metadata["delta_version"].value == table.version()
        rows = table.to_pyarrow_dataset().count_rows()
        assert evaluation.metadata["rows"].value == rows > 0


def test_a_broken_rule_fails_its_own_family_only(on_incremental_stack):
    stack = on_incremental_stack
    spec = CATALOG["silver/sellers"]
    lake = stack.resources["lake_pipeline"]
    uri = lake.table_uri(spec.zone, spec.name)
    options = lake.storage_options()
    committed = pa.table(DeltaTable(uri, storage_options=options).to_pyarrow_dataset().to_table())
    write_deltalake(uri, committed.slice(0, 1), mode="append", storage_options=options)
    try:
        assert not run_checks(stack, *check_keys("silver/sellers")).success
        outcome = {k.name: latest(stack, k)[0] for k in check_keys("silver/sellers")}
        assert not outcome["keys"].passed
        metadata = outcome["keys"].metadata
        assert metadata["failing_rows"].value == 2  # both rows of the duplicated key
        assert len(metadata["sample_rows"].value.records) == 2
        assert all(outcome[f].passed for f in FAMILIES if f != "keys")
    finally:
        write_deltalake(uri, committed, mode="overwrite", storage_options=options)
    assert run_checks(stack, *check_keys("silver/sellers")).success
    assert all(latest(stack, k)[0].passed for k in check_keys("silver/sellers"))
