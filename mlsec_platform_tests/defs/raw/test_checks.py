"""Raw contract checks run on their own against the committed table (a run of the check
alone, as the UI's Execute launches): the session's Raw sellers conform; a committed batch that
lacks a required value makes the check fail with its batch id, never a value."""

from __future__ import annotations

from datetime import UTC, datetime

import dagster as dg
from click.testing import CliRunner

from mlsec_platform.catalog.sources import FILE_SOURCES
from mlsec_platform.cli import main
from mlsec_platform.defs.raw.checks import CHECK_NAME, raw_contract_checks
from mlsec_platform.defs.raw.files import CONNECTOR, CONNECTOR_VERSION, raw_file_assets
from mlsec_platform.storage.raw_writer import Lineage, commit_raw_batch

SELLERS = dg.AssetCheckKey(dg.AssetKey(["raw", "olist_sellers"]), CHECK_NAME)


def _run_check(curated) -> dg.AssetCheckEvaluation:
    definitions = dg.Definitions(
        assets=list(raw_file_assets().values()),
        asset_checks=raw_contract_checks(),
        jobs=[dg.define_asset_job("check_sellers", selection=dg.AssetSelection.checks(SELLERS))],
        resources={"lake_connector": curated.resources["lake_connector"]},
    )
    result = definitions.resolve_job_def("check_sellers").execute_in_process(
        instance=curated.instance
    )
    assert result.success
    (evaluation,) = result.get_asset_check_evaluations()
    assert result.get_asset_materialization_events() == []  # the check alone ran
    return evaluation


def test_a_raw_batch_without_a_required_value_fails_the_contract_check(curated) -> None:
    before = _run_check(curated)
    assert before.passed, before.metadata
    assert before.metadata["rows"].value > 0 and before.metadata["delta_version"].value >= 0

    contract = FILE_SOURCES["olist_sellers"]
    row = {name: "x" for name in contract.column_names} | {
        "seller_id": " ",
        "seller_city": "Ilhéus",
    }
    batch = f"contract-check-{datetime.now(UTC).timestamp():.0f}"
    commit_raw_batch(
        curated.resources["lake_connector"],
        contract.raw_schema().empty_table().from_pylist([row], schema=contract.raw_schema()),
        Lineage(
            "olist_sellers",
            CONNECTOR,
            CONNECTOR_VERSION,
            batch,
            datetime.now(UTC).isoformat(),
            "2" * 64,
        ),
        run_id=None,
    )
    try:
        after = _run_check(curated)
        assert not after.passed
        assert after.metadata["failing_rows"].value == 1
        assert after.metadata["failing_batches"].value == [batch]
        assert after.metadata["delta_version"].value > before.metadata["delta_version"].value
        assert after.metadata["missing_columns"].value == []
        assert "Ilhéus" not in str(after.metadata)
    finally:  # Silver leaves it out, as an operator would (Raw itself is immutable)
        excluded = CliRunner().invoke(
            main, ["quarantine", "exclude", "olist_sellers", batch, "--reason", "test batch"]
        )
        assert excluded.exit_code == 0, excluded.output
