"""Contract conformance of every Raw table, as asset checks that run on their own against the
committed table (the UI's Execute, a schedule, `dagster asset check`): its columns are the
contract's plus the connector's lineage columns, and no row lacks a required value. Not
blocking: Raw is immutable, so a failure is a finding to act on (exclude the batch from Silver,
`mlsec quarantine exclude`), not a write to stop."""

from __future__ import annotations

import dagster as dg

from mlsec_platform.catalog.sources import EVENT_DOMAINS, FILE_SOURCES
from mlsec_platform.resources.s3_lake import S3LakeResource
from mlsec_platform.settings import Zone
from mlsec_platform.storage.raw_conformance import raw_conformance
from mlsec_platform.storage.raw_writer import LINEAGE_COLUMNS, STREAM_COLUMNS, open_table

CHECK_NAME = "contract"


def contract_check(
    source: str, contract_version: int, columns: list[str], required: list[str]
) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=dg.AssetKey(["raw", source]),
        name=CHECK_NAME,
        description=f"raw/{source} matches contract v{contract_version}: its columns and the "
        "lineage columns, no required value missing (at the table's current Delta version)",
    )
    def _check(lake_connector: S3LakeResource) -> dg.AssetCheckResult:
        uri = lake_connector.table_uri(Zone.RAW, source)
        table = open_table(uri, lake_connector.storage_options())
        if table is None:
            return dg.AssetCheckResult(passed=True, metadata={"rows": 0, "note": "no table yet"})
        found = raw_conformance(table, columns, required)
        return dg.AssetCheckResult(
            passed=found.passed,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={
                "delta_version": found.version,
                "rows": found.rows,
                "failing_rows": found.failing_rows,
                "missing_columns": dg.MetadataValue.json(found.missing),
                "unexpected_columns": dg.MetadataValue.json(found.unexpected),
                "failing_batches": dg.MetadataValue.json(found.failing_batches),
                "contract_version": contract_version,
            },
        )

    return _check


def raw_contract_checks() -> list[dg.AssetChecksDefinition]:
    """One check per file source and event domain."""
    checks = [
        contract_check(
            c.name,
            c.version,
            [*c.column_names, *LINEAGE_COLUMNS],
            [col.name for col in c.columns if col.required],
        )
        for c in FILE_SOURCES.values()
    ]
    checks += [
        contract_check(
            e.source,
            e.version,
            [*e.fields, *LINEAGE_COLUMNS, *STREAM_COLUMNS],
            sorted(e.required),
        )
        for e in EVENT_DOMAINS.values()
    ]
    return checks


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions(asset_checks=raw_contract_checks())
