"""Silver: Raw typed, deduplicated and de-identified, one asset per source, each behind its gate.

The assets are generated, one per Silver catalog entry, from three registries and nothing else:
the source's contract (``catalog/sources.py``), the catalog entry (``catalog/datasets.py``) and
its transform (``transforms/silver.py``). Every asset reads its Raw table at the latest Delta
version (recorded as ``lineage/inputs``), skips the Raw batches an operator excluded after a
gate failure, applies its transform, de-identifies the rows as the catalog tags say
(``privacy/deidentify.py``: tokens from the token vault, new values minted there first), and
commits only if the batch passes the pandera gate generated from the same entry.

Incremental: a run after the first transforms only the Raw rows of the keys that Raw's new
files touch (every batch's rows of those keys, so deduplication and tokens are those of a full
build) and replaces those keys' rows in the table, as one Delta version
(``storage/incremental.py`` says when a run rebuilds in full instead). Written by
the ``pipeline`` identity. On the Spark engine the same transform, de-identification and gate
run on the engine, over the Raw table read there (``storage/engine_tables.py``,
``storage/engine_privacy.py``), and so does the increment (``storage/engine_incremental.py``:
the engine reads the added Raw files itself); the batch never comes to this process. Both
engines record their inputs alike, so a table may change engines between runs.
"""

import dataclasses
import time
from collections.abc import Iterable, Mapping

import dagster as dg
import pyarrow as pa

from mlsec_platform.catalog.datasets import SILVER
from mlsec_platform.catalog.governance import DatasetSpec
from mlsec_platform.catalog.sources import EVENT_DOMAINS, FILE_SOURCES
from mlsec_platform.defs.automation import CONDITIONS
from mlsec_platform.defs.catalog import asset_metadata, engine_kinds
from mlsec_platform.defs.gated import gated_asset
from mlsec_platform.errors import ConfigurationError
from mlsec_platform.privacy.deidentify import PrivacyPlan
from mlsec_platform.privacy.tokens import Tokenizer
from mlsec_platform.quality.gates import QualityGate
from mlsec_platform.resources.s3_lake import S3LakeResource
from mlsec_platform.settings import Zone
from mlsec_platform.storage.engine_tables import discard, transform_on_engine
from mlsec_platform.storage.incremental import (
    CuratedBatch,
    added_rows,
    excluded_digest,
    full_rebuild_asked,
    last_inputs,
    too_many,
)
from mlsec_platform.storage.quarantine import excluded_batches
from mlsec_platform.storage.raw_writer import LINEAGE_COLUMNS, STREAM_COLUMNS
from mlsec_platform.storage.snapshots import Snapshot, lineage_metadata, read_snapshot
from mlsec_platform.storage.token_vault_resource import TokenVaultResource
from mlsec_platform.transforms.engine import TransformEngine
from mlsec_platform.transforms.silver import (
    SILVER_TRANSFORMS,
    Rows,
    SilverTransform,
    excluded_table,
    rows_of_groups,
)

CODE_VERSION = "1"


def raw_schema(source: str) -> pa.Schema:
    contract = FILE_SOURCES.get(source) or EVENT_DOMAINS[source.removeprefix("events_")]
    schema = contract.raw_schema()
    extra = STREAM_COLUMNS if source not in FILE_SOURCES else ()
    for name in (*extra, *LINEAGE_COLUMNS):
        schema = schema.append(pa.field(name, pa.string()))
    return schema


def read_raw(lake: S3LakeResource, source: str) -> tuple[Snapshot, set[str]]:
    """The Raw table of ``source`` (empty if nothing was ingested yet) and its excluded batches."""
    snapshot = read_snapshot(lake, Zone.RAW, source, schema=raw_schema(source))
    return snapshot, excluded_batches(lake, source)


def silver_table(
    spec: DatasetSpec,
    transform: SilverTransform,
    raw: Rows,
    excluded: Iterable[str] = (),
    inputs: Mapping[str, Rows] | None = None,
    tokenizer: Tokenizer | None = None,
) -> pa.Table:
    """One Silver batch before its gate: the transform's rows, de-identified per the catalog."""
    table = transform(raw, excluded, **(inputs or {}))
    return PrivacyPlan.of(spec).apply(table, tokenizer)


def incremental_since(
    context: dg.AssetExecutionContext,
    lake: S3LakeResource,
    spec: DatasetSpec,
    transform: SilverTransform,
    raw: Snapshot,
    inputs: list[Snapshot],
    excluded: set[str],
) -> tuple[dict, int | None]:
    """What the run is made from (recorded in its commit, alike on both engines) and the Raw
    version the table's last commit read: the run recomputes only the groups of the rows Raw
    gained since; None: the run rebuilds the table."""
    made_from = {
        raw.asset: raw.version,
        **{s.asset: s.version for s in inputs},
        "excluded": excluded_digest(excluded),
    }
    full = full_rebuild_asked(context.run.tags)
    before = None if full or not transform.group else last_inputs(lake, spec.zone, spec.name)
    # Anything but Raw moved (an input table, the excluded batches): its effect is not confined
    # to the new Raw rows' keys.
    if (
        before is None
        or raw.version is None
        or not isinstance(before.get(raw.asset), int)
        or any(before.get(k) != v for k, v in made_from.items() if k != raw.asset)
    ):
        return made_from, None
    return made_from, before[raw.asset]


def rows_to_transform(
    context: dg.AssetExecutionContext,
    lake: S3LakeResource,
    spec: DatasetSpec,
    transform: SilverTransform,
    raw: Snapshot,
    inputs: list[Snapshot],
    excluded: set[str],
) -> tuple[Rows, dict, str | None]:
    """The Raw rows this run transforms on DuckDB, what they come from (recorded in the
    commit), and the Silver column whose values' rows they replace: None when the run rebuilds
    the table."""
    made_from, since = incremental_since(context, lake, spec, transform, raw, inputs, excluded)
    if since is None:
        return raw.dataset, made_from, None
    added = added_rows(lake, Zone.RAW, transform.source, since, raw.version)
    if added is None:
        return raw.dataset, made_from, None
    raw_column, silver_column = transform.group
    groups = added.to_table(columns=[raw_column])
    # A NULL is in no group; too many groups are cheaper rebuilt than listed, unless the group
    # is the table's key and the commit merges on it instead (``CuratedBatch.merge``).
    listed = spec.key != (silver_column,)
    if groups.column(0).null_count or (listed and too_many(groups.column(0))):
        return raw.dataset, made_from, None
    return rows_of_groups(raw.dataset, groups, raw_column), made_from, silver_column


def _known_source(source: str) -> bool:
    return source in FILE_SOURCES or source.removeprefix("events_") in EVENT_DOMAINS


def silver_asset(spec: DatasetSpec, transform: SilverTransform) -> dg.AssetsDefinition:
    """The asset of one Silver catalog entry over ``raw/<transform.source>``, gated by its
    pandera schema."""
    source = transform.source
    gate = QualityGate(spec)
    plan = PrivacyPlan.of(spec)  # a bad entry fails here, when the code location loads

    def references(lake: S3LakeResource) -> dict[str, pa.Table]:
        return {name: read_snapshot(lake, Zone.SILVER, name).table for name in transform.inputs}

    @gated_asset(
        spec,
        references=references,
        deps=[
            dg.AssetKey(["raw", source]),
            *(dg.AssetKey(["silver", name]) for name in transform.inputs),
        ],
        group_name="silver",
        automation_condition=CONDITIONS["silver"],
        code_version=CODE_VERSION,
        kinds=engine_kinds(),
        owners=["team:data-platform"],
        tags=spec.asset_tags(),
        metadata=asset_metadata(spec),
        description=f"{spec.description} From raw/{source}; gated by its pandera schema.",
    )
    def _silver(
        context: dg.AssetExecutionContext,
        lake_pipeline: S3LakeResource,
        token_vault: TokenVaultResource,
        engine: TransformEngine,
    ):
        started = time.perf_counter()
        # The batch's own vault: its index key and data keys live as long as this step.
        tokenizer = token_vault.for_batch(context.run.run_id) if plan.needs_tokenizer else None
        raw, excluded = read_raw(lake_pipeline, source)
        inputs = [read_snapshot(lake_pipeline, Zone.SILVER, name) for name in transform.inputs]
        metadata = lineage_metadata([raw, *inputs]) | {"engine": engine.engine}
        # Reference data of the gate's rules (the product categories: a few dozen rows).
        params = {s.name: s.table for s in inputs}
        if engine.on_spark:
            yield from _on_engine(
                context,
                spec,
                transform,
                engine,
                lake_pipeline,
                tokenizer,
                metadata,
                started,
                raw=raw,
                inputs=inputs,
                excluded=excluded,
                params=params,
            )
            return
        rows, made_from, replaces = rows_to_transform(
            context, lake_pipeline, spec, transform, raw, inputs, excluded
        )
        table = silver_table(
            spec, transform, rows, excluded, {s.name: s.dataset for s in inputs}, tokenizer
        )
        metadata |= _timing_and_tokens(started, tokenizer) | {"incremental": replaces is not None}
        yield from gate.commit(
            context,
            table,
            lake_pipeline,
            metadata=metadata,
            output=lambda rows: CuratedBatch(
                rows, made_from, replaces, merge=replaces is not None and spec.key == (replaces,)
            ),
            **params,
        )

    return _silver


def _timing_and_tokens(started: float, tokenizer) -> dict:
    metadata = {"transform_seconds": round(time.perf_counter() - started, 2)}
    if tokenizer is not None:
        for domain, (minted, version) in tokenizer.minted.items():
            metadata[f"tokens/{domain}/minted"] = minted
            if version is not None:
                metadata[f"tokens/{domain}/vault_version"] = version
    return metadata


def _on_engine(context, spec, transform, engine, lake, tokenizer, metadata, started, **read):
    """The Silver batch made, de-identified and gated on the Spark engine; after the first
    run, only the groups of the rows Raw gained (``storage/engine_incremental.py``)."""
    from mlsec_platform.storage.engine_incremental import increment_on_engine
    from mlsec_platform.storage.engine_privacy import deidentify_on_engine

    spark, plan, raw = engine.spark_session(), PrivacyPlan.of(spec), read["raw"]
    made_from, since = incremental_since(
        context, lake, spec, transform, raw, read["inputs"], read["excluded"]
    )
    increment = None
    if since is not None:
        increment = increment_on_engine(
            spark, lake, spec, raw, transform.source, transform.group, since
        )
    metadata = dict(metadata) | {"incremental": increment is not None}
    replaced = []  # the replacement, made when the engine's result is planned

    def finish(frame):
        frame = deidentify_on_engine(spark, frame, plan, tokenizer, spec.key)
        metadata.update(_timing_and_tokens(started, tokenizer))
        if increment is None:
            return frame
        replaced.append(increment.replace(spark, lake, spec, frame))
        return replaced[0].frame

    def output(staged):
        if increment is None:
            return CuratedBatch(staged, made_from)
        [replacement] = replaced
        staged = dataclasses.replace(staged, removes=replacement.removes)
        return CuratedBatch(staged, made_from, increment.column, staged_rows=replacement.rows)

    try:
        yield from transform_on_engine(
            context,
            QualityGate(spec),
            spark,
            transform.sql,
            {
                "raw": raw if increment is None else increment.raw,
                **{s.name: s for s in read["inputs"]},
            },
            lake,
            metadata=metadata,
            local={"excluded": excluded_table(read["excluded"])},
            finish=finish,
            output=output,
            **read["params"],
        )
    finally:  # the new rows' own copy; the commit (or the failure) is done with it
        for replacement in replaced:
            if replacement.scratch is not None:
                discard(lake, replacement.scratch)


def silver_assets() -> list[dg.AssetsDefinition]:
    """One asset per Silver catalog entry, as the registries are now."""
    missing = sorted(set(SILVER) - set(SILVER_TRANSFORMS))
    unknown = sorted(set(SILVER_TRANSFORMS) - set(SILVER))
    if missing or unknown:
        raise ConfigurationError(
            f"Silver catalog entries and transforms differ: without a transform {missing}, "
            f"transforms without a catalog entry {unknown}; register each in "
            "transforms/silver.py with @silver_transform"
        )
    for transform in SILVER_TRANSFORMS.values():
        if not _known_source(transform.source):
            raise ConfigurationError(
                f"{transform.dataset} reads raw/{transform.source}, which has no contract in "
                "catalog/sources.py"
            )
    return [silver_asset(spec, SILVER_TRANSFORMS[spec.id]) for spec in SILVER.values()]


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions(assets=silver_assets())
