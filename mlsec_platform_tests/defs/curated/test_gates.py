"""A batch that fails its gate is never committed: quarantine keeps its rows, downstream waits."""

import io
import json
from datetime import UTC, datetime

import dagster as dg
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from mlsec_platform.catalog.sources import FILE_SOURCES
from mlsec_platform.cli import main
from mlsec_platform.defs.raw.files import CONNECTOR, CONNECTOR_VERSION
from mlsec_platform.quality.families import FAMILIES
from mlsec_platform.settings import Zone
from mlsec_platform.storage.raw_writer import Lineage, commit_raw_batch
from mlsec_platform_tests.defs.curated.conftest import run_curated
from mlsec_platform_tests.defs.curated.helpers import version
from mlsec_platform_tests.helpers import audit_events, audit_head


def _bad_batch(curated, source: str, change: dict) -> tuple[str, dict]:
    """A copy of one generated row of ``source`` with ``change`` applied, as a new Raw batch."""
    row = curated.dataset.tables[source].slice(0, 1).to_pylist()[0]
    row = {**row, **change}
    for name in FILE_SOURCES[source].key:  # a new key, unless the change sets it
        if name not in change and name not in ("order_item_id", "payment_sequential"):
            row[name] = f"bad{datetime.now(UTC).timestamp():.0f}{name}"[:32]
    batch = f"gate-test-{source}-{'-'.join(change)}"
    table = (
        FILE_SOURCES[source]
        .raw_schema()
        .empty_table()
        .from_pylist([row], schema=FILE_SOURCES[source].raw_schema())
    )
    commit_raw_batch(
        curated.resources["lake_connector"],
        table,
        Lineage(
            source, CONNECTOR, CONNECTOR_VERSION, batch, datetime.now(UTC).isoformat(), "1" * 64
        ),
        run_id=None,
    )
    return batch, row


CASES = [
    ("olist_order_items", {"price": "-10.00"}, "order_items", "fact_order_item", "price", "ranges"),
    ("olist_orders", {"order_id": None}, "orders", "fact_order_item", "order_id", "types"),
    (
        "olist_products",
        {"product_category_name": "categoria_inexistente"},
        "products",
        "dim_product",
        "category",
        "references",
    ),
]


@pytest.mark.parametrize(("source", "change", "silver", "gold", "column", "family"), CASES)
def test_failing_batch_is_not_committed_and_downstream_does_not_run(
    curated, superuser_dsn, source, change, silver, gold, column, family
):
    batch, _ = _bad_batch(curated, source, change)
    silver_before, gold_before = version(curated, "silver", silver), version(curated, "gold", gold)
    head = audit_head(superuser_dsn)

    result = run_curated(
        curated.resources,
        curated.instance,
        asset_selection=[dg.AssetKey(["silver", silver]), dg.AssetKey(["gold", gold])],
    )
    assert not result.success
    # The failing rule shows as its own family's failed check, with its rows, in the event log.
    records = curated.instance.get_records_for_run(
        result.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION
    ).records
    checks = {
        e.check_name: e
        for e in (r.event_log_entry.dagster_event.event_specific_data for r in records)
        if e.asset_key.path == ["silver", silver]
    }
    assert family in checks and set(checks) <= set(FAMILIES)
    check = checks[family]
    assert not check.passed and check.metadata["failing_rows"].value == 1
    assert check.metadata["raw_batches"].value == [batch]
    (sample,) = check.metadata["sample_rows"].value.records
    assert column in sample.data or family == "types"
    assert all(c.passed for name, c in checks.items() if name not in (family, "keys"))
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert materialized == set()  # neither the failing table nor anything downstream
    assert version(curated, "silver", silver) == silver_before
    assert version(curated, "gold", gold) == gold_before

    lake = curated.resources["lake_pipeline"]
    prefix = check.metadata["quarantine"].value.split("/", 1)[1]
    s3 = lake.client()
    bucket = lake.bucket(Zone.QUARANTINE)
    rows = pq.read_table(
        io.BytesIO(s3.get_object(Bucket=bucket, Key=f"{prefix}/payload")["Body"].read())
    )
    assert rows.column("_raw_batch_id").to_pylist() == [batch]
    reason = json.loads(s3.get_object(Bucket=bucket, Key=f"{prefix}/reason.json")["Body"].read())
    assert any(c["column"] == column for c in reason["checks"])
    assert [e["dataset"] for e in audit_events(superuser_dsn, "quality.gate_failed", head)] == [
        f"silver/{silver}"
    ]

    # The operator excludes the batch (Raw stays immutable); the next run passes.
    excluded = CliRunner().invoke(
        main, ["quarantine", "exclude", source, batch, "--reason", "negative test batch"]
    )
    assert excluded.exit_code == 0, excluded.output
    assert len(audit_events(superuser_dsn, "quality.batch_excluded", head)) == 1
    again = run_curated(
        curated.resources,
        curated.instance,
        asset_selection=[dg.AssetKey(["silver", silver]), dg.AssetKey(["gold", gold])],
    )
    assert again.success
    assert version(curated, "silver", silver) == silver_before + 1
