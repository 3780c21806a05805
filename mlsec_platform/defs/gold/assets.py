"""Gold: the star schema and KPI tables, in Delta (loaded into Postgres by ``defs/warehouse``).

``gold/<table>`` assets run the SQL of ``transforms/gold.py`` on the configured engine (DuckDB
by default, Spark Connect when ``engine: spark``) over pinned snapshots of their inputs, and
commit only through their quality gate. On DuckDB, ``fact_order_item`` recomputes only the
orders its inputs changed since its last commit (their change feeds) and replaces them; the
other Gold tables are small aggregates and dimensions, rebuilt from their inputs each run.
On Spark the engine reads the inputs and writes the result itself; the gate runs there too,
and the IO manager commits the staged files (``storage/engine_tables.py``).
"""

from datetime import date

import dagster as dg
import pyarrow.compute as pc

from mlsec_platform.catalog.datasets import dataset
from mlsec_platform.defs.automation import CONDITIONS, FRESHNESS
from mlsec_platform.defs.catalog import asset_metadata, engine_kinds
from mlsec_platform.defs.gated import gated_asset
from mlsec_platform.quality.gates import QualityGate
from mlsec_platform.resources.s3_lake import S3LakeResource
from mlsec_platform.settings import Zone
from mlsec_platform.storage.engine_tables import pin, transform_on_engine
from mlsec_platform.storage.incremental import (
    CuratedBatch,
    changed_inputs,
    full_rebuild_asked,
    too_many,
)
from mlsec_platform.storage.snapshots import Snapshot, lineage_metadata, read_snapshot
from mlsec_platform.transforms import gold as transforms
from mlsec_platform.transforms.duck import run_sql
from mlsec_platform.transforms.engine import TransformEngine

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

    @gated_asset(
        spec,
        deps=[_input_key(n) for n in inputs],
        group_name="gold",
        automation_condition=CONDITIONS["gold"],
        freshness_policy=FRESHNESS["gold"],
        code_version=CODE_VERSION,
        kinds=engine_kinds(),
        owners=["team:data-platform"],
        tags=spec.asset_tags(),
        metadata=asset_metadata(spec),
        description=f"{spec.description} {(query.__doc__ or '').strip()}",
    )
    def _gold(
        context: dg.AssetExecutionContext,
        lake_pipeline: S3LakeResource,
        engine: TransformEngine,
    ):
        snapshots = read_inputs(lake_pipeline, inputs)
        metadata = lineage_metadata(snapshots) | {"engine": engine.engine}
        if engine.on_spark:
            spark, sql = engine.spark_session(), query(engine.dialect)
            yield from transform_on_engine(
                context,
                gate,
                spark,
                sql,
                {s.name: s for s in snapshots},
                lake_pipeline,
                metadata=metadata,
            )
            return
        tables = {s.name: s.dataset for s in snapshots}
        made_from = {s.asset: s.version for s in snapshots}
        replaces = None
        if name in INCREMENTAL:
            tables, replaces = INCREMENTAL[name](context, lake_pipeline, spec, snapshots, tables)
        table = engine.run(query, **tables)
        yield from gate.commit(
            context,
            table,
            lake_pipeline,
            metadata=metadata | {"incremental": replaces is not None},
            output=lambda rows: CuratedBatch(rows, made_from, replaces),
        )

    return _gold


def fact_order_item_inputs(context, lake, spec, snapshots, tables):
    """The inputs of an incremental ``fact_order_item``: the items of the orders its inputs
    changed (``transforms.fact_changed_orders``), and the column whose values' rows they
    replace (every row of those orders); all items and None when the table is rebuilt."""
    full = full_rebuild_asked(context.run.tags)
    changes = changed_inputs(
        lake, spec.zone, spec.name, snapshots, transforms.FACT_CHANGE_COLUMNS, full
    )
    if changes is None:
        return tables, None
    changed = run_sql(transforms.fact_changed_orders(), **changes, **tables)
    if too_many(changed.column("order_id")):
        return tables, None
    items = run_sql(
        "SELECT * FROM order_items WHERE order_id IN (SELECT order_id FROM changed)",
        order_items=tables["order_items"],
        changed=changed,
    )
    return {**tables, "order_items": items}, "order_id"


#: Gold tables built incrementally on DuckDB -> how a run picks the inputs it recomputes.
INCREMENTAL = {"fact_order_item": fact_order_item_inputs}

GOLD_ASSETS = [gold_asset(name) for name in transforms.GOLD_QUERIES]

_DIM_DATE = dataset("gold/dim_date")
_DIM_DATE_GATE = QualityGate(_DIM_DATE)


@gated_asset(
    _DIM_DATE,
    deps=[dg.AssetKey(["silver", "orders"])],
    group_name="gold",
    automation_condition=CONDITIONS["gold"],
    freshness_policy=FRESHNESS["gold"],
    code_version=CODE_VERSION,
    kinds={"delta", "s3"},
    owners=["team:data-platform"],
    tags=_DIM_DATE.asset_tags(),
    metadata=asset_metadata(_DIM_DATE),
)
def dim_date(
    context: dg.AssetExecutionContext, lake_pipeline: S3LakeResource, engine: TransformEngine
):
    """Calendar days from the first to the last purchase (whole years), for the date dimension."""
    if engine.on_spark:  # two values computed on the engine, not a column fetched here
        orders = pin(lake_pipeline, Zone.SILVER, "orders")
        first, last = purchase_bounds_on_engine(engine, orders)
    else:
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


def purchase_bounds_on_engine(engine: TransformEngine, orders: Snapshot):
    """The first and last purchase time of the pinned Silver orders, on the engine."""
    from mlsec_platform.storage.engine_tables import engine_frame

    frame = engine_frame(engine.spark_session(), orders)
    [(first, last)] = frame.selectExpr("min(purchased_at)", "max(purchased_at)").collect()
    return first, last


curated_job = dg.define_asset_job(
    "curated",
    selection=dg.AssetSelection.groups("reference", "silver", "gold", "warehouse", "features"),
    description="Raw -> Silver -> Gold -> warehouse and feature groups, every step gated.",
)


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions(assets=[*GOLD_ASSETS, dim_date], jobs=[curated_job])
