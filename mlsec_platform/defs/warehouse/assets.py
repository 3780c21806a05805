"""The Postgres warehouse: Gold tables and the online feature store, loaded from Delta.

One multi-asset, ``warehouse/<table>`` per table, so the loads share a step and run two at a
time on their own connections (a COPY is bound by one Postgres backend; two use both cores).
Each load is still its own transaction: it replaces the table with the latest committed Delta
version of its source, records that version, and (re)declares row-level security on the
catalog's row-security key. Once loaded, an online store takes only the entities its feature
table changed since, and ``fact_order_item`` only the orders (:func:`changed_keys`), when every
commit since named its changed keys; a full rebuild (the run tag), a whole-table overwrite or
an erasure's rewrite loads the table whole again. Any subset can be materialized.
"""

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import dagster as dg
import pyarrow as pa

from mlsec_platform.catalog.datasets import FEATURE_GROUPS, dataset
from mlsec_platform.catalog.governance import DatasetSpec
from mlsec_platform.defs.automation import CONDITIONS
from mlsec_platform.defs.catalog import asset_key, column_schema
from mlsec_platform.resources.postgres import PostgresWarehouseResource
from mlsec_platform.resources.s3_lake import S3LakeResource
from mlsec_platform.storage.incremental import changed_rows, full_rebuild_asked, only_merged
from mlsec_platform.storage.snapshots import Snapshot, lineage_metadata, read_snapshot
from mlsec_platform.storage.warehouse import (
    WarehouseLoad,
    ensure_loads_table,
    load_table,
    loaded_version,
    replace_rows,
    upsert_rows,
)
from mlsec_platform.transforms.duck import run_sql
from mlsec_platform.transforms.gold import GOLD_QUERIES

CODE_VERSION = "1"
#: Gold tables with several rows per key, taking a newer version as its changed keys' rows.
#: The fact table is the largest load (1M orders: 1.15M rows) and a batch changes a few orders;
#: the other Gold tables are dimensions and aggregates, loaded whole.
REPLACED_BY = {"fact_order_item": "order_id"}
#: Concurrent loads (connections) in one run.
PARALLEL_LOADS = 2


@dataclass(frozen=True)
class Target:
    source: DatasetSpec
    schema: str
    name: str
    #: Indexed key in Postgres: only where readers look rows up by it (the gate has already
    #: proven every catalog key unique before the Delta commit).
    index: tuple[str, ...] | None = None
    #: A column with several rows per value (an order's items): a newer version reaches the
    #: loaded table as the rows of the values its change feed names (:func:`changed_keys`).
    replaced_by: str | None = None

    @property
    def key(self) -> dg.AssetKey:
        return dg.AssetKey(["warehouse", self.name])

    @property
    def changes_by(self) -> str | None:
        """The column whose changed values a newer version brings to the loaded table: an
        online store's entity (upserted), or :attr:`replaced_by`; None: loaded whole."""
        group = self.source.feature_group
        return group.entity if group is not None else self.replaced_by

    def rows(self, snapshot: Snapshot) -> pa.Table:
        """What goes to Postgres: the whole table, or the latest feature row per entity."""
        if self.source.feature_group is None:
            return snapshot.table
        return self.latest(snapshot.dataset)

    def latest(self, rows) -> pa.Table:
        """An online store's rows of ``rows`` (a feature table or some entities' part of it):
        the latest per entity."""
        entity = self.source.feature_group.entity
        return run_sql(
            f"""SELECT * FROM t QUALIFY row_number() OVER (
                   PARTITION BY "{entity}" ORDER BY event_timestamp DESC) = 1""",
            t=rows,
        )

    def row_count(self, snapshot: Snapshot) -> int:
        """How many rows :meth:`rows` gives, without making them: an online store holds one
        row per entity (NULL being one, as in the PARTITION BY), so it counts the entities, a
        hash aggregate of one column instead of a sort of the whole table by entity and time."""
        group = self.source.feature_group
        if group is None:
            return snapshot.dataset.count_rows()
        counted = run_sql(
            f'SELECT count(*) AS n FROM (SELECT DISTINCT "{group.entity}" FROM t)',
            t=snapshot.dataset,
        )
        return counted.column("n")[0].as_py()


TARGETS = [
    *(
        Target(dataset(f"gold/{n}"), "gold", n, replaced_by=REPLACED_BY.get(n))
        for n in [*GOLD_QUERIES, "dim_date"]
    ),
    # Each feature group's online store: the latest row per entity, keyed by the entity.
    *(
        Target(
            spec,
            spec.feature_group.online_schema,
            spec.feature_group.online_name,
            (spec.feature_group.entity,),
        )
        for spec in FEATURE_GROUPS.values()
    ),
]
BY_KEY = {t.key: t for t in TARGETS}


def _spec(target: Target) -> dg.AssetSpec:
    source = target.source
    return dg.AssetSpec(
        key=target.key,
        deps=[asset_key(source)],
        group_name="warehouse",
        automation_condition=CONDITIONS["warehouse"],
        code_version=CODE_VERSION,
        kinds={"postgres"},
        owners=["team:data-platform"],
        tags={**source.asset_tags(), "zone": "warehouse"},
        metadata={
            "dagster/column_schema": column_schema(source),
            "table": f"{target.schema}.{target.name}",
        },
        description=(
            f"{source.id} loaded into Postgres {target.schema}.{target.name} in one transaction, "
            f"row-level security on {source.row_security_key or 'nothing (all rows)'}."
        ),
    )


@dg.multi_asset(specs=[_spec(t) for t in TARGETS], can_subset=True, name="warehouse_loads")
def warehouse_loads(
    context: dg.AssetExecutionContext,
    lake_pipeline: S3LakeResource,
    warehouse: PostgresWarehouseResource,
):
    """Load each selected table (two at a time), then report each load as its asset."""
    targets = [BY_KEY[k] for k in context.selected_asset_keys]
    run_id = context.run.run_id
    full = full_rebuild_asked(context.run.tags)

    def load(target: Target) -> tuple[Target, Snapshot, WarehouseLoad]:
        snapshot = read_snapshot(lake_pipeline, target.source.zone, target.source.name)
        with warehouse.connection() as conn:
            result = None if full else changed_keys(conn, lake_pipeline, target, snapshot, run_id)
            if result is None:
                result = load_table(
                    conn,
                    target.source,
                    target.rows(snapshot),
                    schema=target.schema,
                    name=target.name,
                    delta_version=snapshot.version,
                    run_id=run_id,
                    index=target.index,
                )
        return target, snapshot, result

    # S3 keys and the warehouse login are fetched (and audited) here, once, so the loading
    # threads only reuse them and never write to the audit connection themselves.
    # The bookkeeping tables too, so parallel loads never race to create one.
    lake_pipeline.storage_options()
    with warehouse.connection() as conn, conn.cursor() as cur:
        for schema in sorted({t.schema for t in targets}):
            ensure_loads_table(cur, schema)
    # Largest first, so the two workers finish together.
    targets.sort(key=lambda t: t.name != "fact_order_item" and t.source.feature_group is None)
    with ThreadPoolExecutor(PARALLEL_LOADS) as pool:
        done = list(pool.map(load, targets))
    for target, snapshot, result in done:
        lake_pipeline.audit.emit(
            "warehouse.loaded",
            {
                "table": f"{target.schema}.{target.name}",
                "rows": result.rows,
                "source": target.source.id,
                "delta_version": snapshot.version,
            },
        )
        yield dg.MaterializeResult(
            asset_key=target.key,
            metadata={
                "dagster/row_count": result.rows,
                "table": f"{target.schema}.{target.name}",
                "delta_version": snapshot.version,
                "seconds": dg.MetadataValue.json(
                    {k: round(v, 2) for k, v in result.seconds.items()}
                ),
                **lineage_metadata([snapshot]),
            },
            data_version=dg.DataVersion(str(snapshot.version)),
        )


def changed_keys(
    conn, lake: S3LakeResource, target: Target, snapshot: Snapshot, run_id: str
) -> WarehouseLoad | None:
    """For a target loaded before that changes by key (:attr:`Target.changes_by`): the keys
    the source's change feed names since the loaded version, brought over in one transaction
    (an online store's entities upserted, or deleted when gone; a fact table's orders deleted
    and inserted again); None: load it whole (another target, never loaded, a commit since
    that did not name its keys, or a feed that cannot say). An event batch changes some
    thousands of people of a million, a Raw batch some orders: a reload would copy (and
    index) all of them again for each batch."""
    key = target.changes_by
    if key is None or snapshot.version is None:
        return None
    with conn.cursor() as cur:
        since = loaded_version(cur, target.schema, target.name)
    if since is None:
        return None
    source = target.source
    if not only_merged(lake, source.zone, source.name, since, snapshot.version):
        return None
    changed = changed_rows(lake, source.zone, source.name, since, snapshot.version, [key])
    if changed is None or changed.column(0).null_count:  # a NULL key: no list selects it
        return None
    rows = run_sql(
        f'SELECT * FROM t WHERE "{key}" IN (SELECT "{key}" FROM changed)',
        t=snapshot.dataset,
        changed=changed,
    )
    keys = sorted(set(changed.column(0).to_pylist()))
    where = {"schema": target.schema, "name": target.name, "key": key, "run_id": run_id}
    if target.replaced_by is not None:
        return replace_rows(conn, source, rows, keys, delta_version=snapshot.version, **where)
    rows = target.latest(rows)
    gone = sorted(set(keys) - set(rows.column(key).to_pylist()))
    return upsert_rows(conn, source, rows, gone, delta_version=snapshot.version, **where)


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions(assets=[warehouse_loads])
