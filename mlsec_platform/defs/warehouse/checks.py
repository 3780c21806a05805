"""Each warehouse table against the Delta version it was loaded from, as asset checks that run
on their own: the rows in Postgres now, the rows its load recorded (``<schema>.loads``) and the
rows that version of the source holds (the latest row per entity for an online store) must be
one number. Not blocking: a mismatch means something changed the table outside a load, or a
load reported what it did not do; the next load replaces the table."""

from __future__ import annotations

import dagster as dg
from psycopg2 import sql

from mlsec_platform.defs.warehouse.assets import TARGETS, Target
from mlsec_platform.resources.postgres import PostgresWarehouseResource
from mlsec_platform.resources.s3_lake import S3LakeResource
from mlsec_platform.storage.snapshots import read_snapshot
from mlsec_platform.storage.warehouse import LOADS_TABLE

CHECK_NAME = "rows_match_delta_version"


def rows_check(target: Target) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=target.key,
        name=CHECK_NAME,
        description=f"{target.schema}.{target.name} holds the rows of the {target.source.id} "
        "Delta version its last load recorded",
    )
    def _check(
        lake_pipeline: S3LakeResource, warehouse: PostgresWarehouseResource
    ) -> dg.AssetCheckResult:
        table = sql.Identifier(target.schema, target.name)
        loads = sql.Identifier(target.schema, LOADS_TABLE)
        with warehouse.connection() as conn, conn.cursor() as cur:
            cur.execute(
                sql.SQL("SELECT delta_version, rows FROM {} WHERE table_name = %s").format(loads),
                (target.name,),
            )
            load = cur.fetchone()
            if load is None:
                return dg.AssetCheckResult(passed=True, metadata={"note": "not loaded yet"})
            cur.execute(sql.SQL("SELECT count(*) FROM {}").format(table))
            (in_postgres,) = cur.fetchone()
        version, recorded = load
        snapshot = read_snapshot(
            lake_pipeline, target.source.zone, target.source.name, version=version
        )
        in_delta = target.row_count(snapshot)
        return dg.AssetCheckResult(
            passed=in_postgres == recorded == in_delta,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={
                "delta_version": version,
                "rows_in_postgres": in_postgres,
                "rows_recorded_by_the_load": recorded,
                "rows_in_delta_version": in_delta,
            },
        )

    return _check


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions(asset_checks=[rows_check(t) for t in TARGETS])
