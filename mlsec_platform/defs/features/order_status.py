"""Feature group ``customer_order_status`` v1: order events to the online store, incrementally.

Why this shape: ``/feature/vector`` serves feature groups by the person's customer token, so
the path from an order event to a served value is a feature group keyed by that token. One
row per person holds where their orders stand now (the latest order's status and when it
changed, open, delivered and canceled counts); its ``event_timestamp`` is the person's latest
event, so a point-in-time read never sees a row before it was true. Its history is the Delta
versions of the table, not rows: the group answers "what now", which is what an event changes.

Incremental on DuckDB: a run recomputes only the people that the events and customer rows
committed since its last commit name (the inputs' change feeds), from all of those people's
events, and replaces their rows in one Delta version; it rebuilds in full when
``storage/incremental.py`` says so. ``warehouse/customer_order_status_online`` (``defs/warehouse``)
then loads it into Postgres, where the broker serves it under the same policy, masks, row
security and audit as ``customer_rfm``.
"""

from datetime import UTC, datetime

import dagster as dg
import pyarrow as pa

from mlsec_platform.catalog.datasets import dataset
from mlsec_platform.defs.automation import CONDITIONS, FRESHNESS
from mlsec_platform.defs.catalog import asset_metadata, engine_kinds
from mlsec_platform.defs.features.assets import with_feature_columns
from mlsec_platform.defs.gated import gated_asset
from mlsec_platform.quality.gates import QualityGate
from mlsec_platform.resources.s3_lake import S3LakeResource
from mlsec_platform.settings import Zone
from mlsec_platform.storage.engine_tables import transform_on_engine
from mlsec_platform.storage.incremental import (
    CuratedBatch,
    changed_inputs,
    full_rebuild_asked,
)
from mlsec_platform.storage.snapshots import Snapshot, lineage_metadata, read_snapshot
from mlsec_platform.transforms import features as transforms
from mlsec_platform.transforms.duck import run_sql
from mlsec_platform.transforms.engine import TransformEngine

STATUS = dataset("features/customer_order_status")
STATUS_GATE = QualityGate(STATUS)
GROUP_VERSION = f"{STATUS.feature_group.name}:v{STATUS.version}"


def with_group_columns(table: pa.Table, materialized_at: datetime) -> pa.Table:
    rows = table.num_rows
    return table.append_column(
        "feature_group_version", pa.repeat(pa.scalar(GROUP_VERSION, pa.string()), rows)
    ).append_column(
        "materialized_at", pa.repeat(pa.scalar(materialized_at, pa.timestamp("us", tz="UTC")), rows)
    )


def read_inputs(lake: S3LakeResource) -> list[Snapshot]:
    """The pinned Silver events and customers (scanned lazily: the queries read only the
    columns they name)."""
    return [read_snapshot(lake, Zone.SILVER, n) for n in ("order_events", "customers")]


def rows_to_compute(
    lake: S3LakeResource, snapshots: list[Snapshot], full: bool
) -> tuple[dict[str, object], str | None]:
    """The inputs this run computes from, and the column whose values' rows they replace:
    only the changed people's customers and events, or everything and None (full build)."""
    tables = {s.name: s.dataset for s in snapshots}
    changes = changed_inputs(
        lake,
        STATUS.zone,
        STATUS.name,
        snapshots,
        transforms.ORDER_STATUS_CHANGE_COLUMNS,
        full,
    )
    if changes is None:
        return tables, None
    # However many people changed: the commit merges on the key (one row per person), so it
    # has no list of them to outgrow (``CuratedBatch.merge``).
    people = run_sql(transforms.CHANGED_PEOPLE, **changes, customers=tables["customers"])
    customers = run_sql(transforms.CUSTOMERS_OF, customers=tables["customers"], people=people)
    events = run_sql(transforms.EVENTS_OF, order_events=tables["order_events"], customers=customers)
    return {"order_events": events, "customers": customers}, "customer_token"


@gated_asset(
    STATUS,
    deps=[dg.AssetKey(["silver", "order_events"]), dg.AssetKey(["silver", "customers"])],
    group_name="features",
    automation_condition=CONDITIONS["features"],
    freshness_policy=FRESHNESS["features"],
    code_version=str(STATUS.version),
    kinds=engine_kinds(),
    owners=["team:ml-platform"],
    tags={
        **STATUS.asset_tags(),
        "feature_group": STATUS.feature_group.name,
        "feature_group_version": f"v{STATUS.version}",
    },
    metadata={**asset_metadata(STATUS), "feature_group_version": GROUP_VERSION},
)
def customer_order_status(
    context: dg.AssetExecutionContext, lake_pipeline: S3LakeResource, engine: TransformEngine
):
    """Per person (customer token): the status of their most recently changed order and when
    it changed, and how many of their orders are open, delivered and canceled, from the order
    lifecycle events. Only the people whose events or customer rows changed are recomputed."""
    snapshots = read_inputs(lake_pipeline)
    metadata = lineage_metadata(snapshots) | {
        "feature_group_version": GROUP_VERSION,
        "engine": engine.engine,
    }
    materialized_at = datetime.now(UTC)
    if engine.on_spark:
        yield from transform_on_engine(
            context,
            STATUS_GATE,
            engine.spark_session(),
            transforms.customer_order_status(engine.dialect),
            {s.name: s for s in snapshots},
            lake_pipeline,
            metadata=metadata,
            finish=lambda frame: with_feature_columns(frame, materialized_at, GROUP_VERSION),
        )
        return
    full = full_rebuild_asked(context.run.tags)
    tables, replaces = rows_to_compute(lake_pipeline, snapshots, full)
    table = with_group_columns(
        engine.run(transforms.customer_order_status, **tables), materialized_at
    )
    made_from = {s.asset: s.version for s in snapshots}
    yield from STATUS_GATE.commit(
        context,
        table,
        lake_pipeline,
        metadata=metadata
        | {"incremental": replaces is not None, "entities_computed": table.num_rows},
        output=lambda rows: CuratedBatch(rows, made_from, replaces, merge=True),
    )


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions(assets=[customer_order_status])
