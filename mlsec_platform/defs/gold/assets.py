"""Gold: the star schema and KPI tables, in Delta, each loaded into the Postgres warehouse.

``gold/<table>`` assets run the SQL of ``transforms/gold.py`` on the configured engine (DuckDB
by default, PySpark when ``engine: spark``) over pinned snapshots of their inputs, and commit
only through their quality gate. ``warehouse/<table>`` assets then load the committed Delta
version into Postgres in one transaction, with row-level security on the catalog's
row-security key.
"""

from datetime import date

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc

from mlsec_platform.io.snapshots import Snapshot, lineage_metadata, read_snapshot
from mlsec_platform.io.warehouse import load_table
from mlsec_platform.privacy.catalog import dataset
from mlsec_platform.quality.gates import QualityGate
from mlsec_platform.resources.engine import TransformEngine
from mlsec_platform.resources.postgres import PostgresWarehouseResource
from mlsec_platform.resources.s3_lake import S3LakeResource
from mlsec_platform.runtime.settings import Zone
from mlsec_platform.transforms import gold as transforms

CODE_VERSION = "1"
#: Inputs that are Gold tables themselves; the rest are Silver.
GOLD_INPUTS = {"fact_order_item", "dim_product"}


def _input_key(name: str) -> dg.AssetKey:
    return dg.AssetKey(["gold" if name in GOLD_INPUTS else "silver", name])


def read_inputs(lake: S3LakeResource, names: tuple[str, ...]) -> list[Snapshot]:
    return [read_snapshot(lake, Zone.GOLD if n in GOLD_INPUTS else Zone.SILVER, n) for n in names]


def gold_asset(name: str) -> dg.AssetsDefinition:
    query, inputs = transforms.GOLD_QUERIES[name]
    spec = dataset(f"gold/{name}")
    gate = QualityGate(spec)

    @dg.asset(
        key=spec.asset_key,
        deps=[_input_key(n) for n in inputs],
        group_name="gold",
        io_manager_key="lakehouse_io_manager",
        code_version=CODE_VERSION,
        kinds={"delta", "s3", "duckdb", "spark"},
        owners=["team:data-platform"],
        tags=spec.asset_tags(),
        metadata=spec.asset_metadata(),
        check_specs=gate.check_specs,
        description=f"{spec.description} {(query.__doc__ or '').strip()}",
    )
    def _gold(
        context: dg.AssetExecutionContext,
        lake_pipeline: S3LakeResource,
        engine: TransformEngine,
    ):
        snapshots = read_inputs(lake_pipeline, inputs)
        table = engine.run(query, **{s.name: s.table for s in snapshots})
        metadata = lineage_metadata(snapshots) | {"engine": engine.engine}
        yield from gate.commit(context, table, lake_pipeline, metadata=metadata)

    return _gold


GOLD_ASSETS = [gold_asset(name) for name in transforms.GOLD_QUERIES]

_DIM_DATE = dataset("gold/dim_date")
_DIM_DATE_GATE = QualityGate(_DIM_DATE)


@dg.asset(
    key=_DIM_DATE.asset_key,
    deps=[dg.AssetKey(["silver", "orders"])],
    group_name="gold",
    io_manager_key="lakehouse_io_manager",
    code_version=CODE_VERSION,
    kinds={"delta", "s3"},
    owners=["team:data-platform"],
    tags=_DIM_DATE.asset_tags(),
    metadata=_DIM_DATE.asset_metadata(),
    check_specs=_DIM_DATE_GATE.check_specs,
)
def dim_date(context: dg.AssetExecutionContext, lake_pipeline: S3LakeResource):
    """Calendar days from the first to the last purchase (whole years), for the date dimension."""
    orders = read_snapshot(lake_pipeline, Zone.SILVER, "orders", columns=["purchased_at"])
    bounds = pc.min_max(orders.table.column("purchased_at"))
    first, last = bounds["min"].as_py(), bounds["max"].as_py()
    today = date.today()
    first_day = date(first.year, 1, 1) if first else date(today.year, 1, 1)
    last_day = date(last.year, 12, 31) if last else date(today.year, 12, 31)
    yield from _DIM_DATE_GATE.commit(
        context,
        transforms.dim_date(first_day, last_day),
        lake_pipeline,
        metadata=lineage_metadata([orders]),
    )


def warehouse_asset(
    dataset_id: str, *, schema: str, name: str | None = None, key: tuple[str, ...] | None = None
):
    """``warehouse/<name>``: the latest committed Delta version of ``dataset_id`` in Postgres."""
    spec = dataset(dataset_id)
    name = name or spec.name

    @dg.asset(
        key=["warehouse", name],
        deps=[spec.asset_key],
        group_name="warehouse",
        code_version=CODE_VERSION,
        kinds={"postgres"},
        owners=["team:data-platform"],
        tags={**spec.asset_tags(), "zone": "warehouse"},
        metadata={"dagster/column_schema": spec.column_schema(), "table": f"{schema}.{name}"},
        description=(
            f"{dataset_id} loaded into Postgres {schema}.{name} in one transaction, "
            f"row-level security on {spec.row_security_key or 'nothing (all rows)'}."
        ),
    )
    def _load(
        context: dg.AssetExecutionContext,
        lake_pipeline: S3LakeResource,
        warehouse: PostgresWarehouseResource,
    ) -> dg.MaterializeResult:
        snapshot = read_snapshot(lake_pipeline, spec.zone, spec.name)
        data = select_for_load(dataset_id, snapshot.table)
        with warehouse.connection() as conn:
            load = load_table(
                conn,
                spec,
                data,
                schema=schema,
                name=name,
                delta_version=snapshot.version,
                run_id=context.run.run_id,
                key=key,
            )
        lake_pipeline.audit.emit(
            "warehouse.loaded",
            {"table": f"{schema}.{name}", "rows": load.rows, "source": dataset_id,
             "delta_version": snapshot.version},
        )  # fmt: skip
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": load.rows,
                "table": f"{schema}.{name}",
                "delta_version": snapshot.version,
                **lineage_metadata([snapshot]),
            },
            data_version=dg.DataVersion(str(snapshot.version)),
        )

    return _load


def select_for_load(dataset_id: str, table: pa.Table) -> pa.Table:
    """What goes to Postgres: the whole table, or the latest feature row per entity online."""
    if dataset_id != "features/customer_rfm":
        return table
    from mlsec_platform.transforms.duck import run_sql

    return run_sql(
        """SELECT * FROM t QUALIFY row_number() OVER (
               PARTITION BY customer_token ORDER BY event_timestamp DESC) = 1""",
        t=table,
    )


WAREHOUSE_ASSETS = [
    warehouse_asset(f"gold/{name}", schema="gold")
    for name in [*transforms.GOLD_QUERIES, "dim_date"]
]


curated_job = dg.define_asset_job(
    "curated",
    selection=dg.AssetSelection.groups("reference", "silver", "gold", "warehouse", "features"),
    description="Raw -> Silver -> Gold -> warehouse and feature groups, every step gated.",
)


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions(assets=[*GOLD_ASSETS, dim_date, *WAREHOUSE_ASSETS], jobs=[curated_job])
