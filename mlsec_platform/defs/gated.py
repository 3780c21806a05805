"""A gated catalog table's asset, whose rule-family checks also run on their own.

Each Silver, Gold and feature table commits through its gate (``quality/gates.py``), which
yields one blocking check per rule family with the batch. ``@gated_asset`` declares such an
asset as a subsettable multi-asset, so those checks can be selected without the asset (the
UI's Execute on a check, a job selecting checks only): then nothing is computed or committed,
and each selected family is evaluated on the table's committed Delta version instead, with its
failing-row count and sample rows. With the asset selected, the body runs as before and only the
selected checks' results are reported.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import dagster as dg
import pyarrow as pa

from mlsec_platform.catalog.governance import DatasetSpec
from mlsec_platform.defs.catalog import asset_key
from mlsec_platform.quality.gates import QualityGate
from mlsec_platform.resources.s3_lake import S3LakeResource
from mlsec_platform.storage.snapshots import read_snapshot

#: The gate's reference tables for a committed-table check: lake -> name -> rows.
ReferenceTables = Callable[[S3LakeResource], Mapping[str, pa.Table]]


def gated_asset(
    spec: DatasetSpec,
    *,
    references: ReferenceTables | None = None,
    **asset_spec: Any,
) -> Callable[[Callable[..., Iterator]], dg.AssetsDefinition]:
    """Decorate an asset body (first parameter the context; ``lake_pipeline`` among its
    resources) that commits ``spec`` through its gate; ``asset_spec``: the
    :class:`dagster.AssetSpec` arguments (description defaults to the body's docstring)."""
    gate = QualityGate(spec)
    key = asset_key(spec)

    def decorate(body: Callable[..., Iterator]) -> dg.AssetsDefinition:
        described = {"description": (body.__doc__ or "").strip() or None, **asset_spec}
        definition = dg.AssetSpec(key, **described).with_io_manager_key("lakehouse_io_manager")

        @functools.wraps(body)
        def run(context: dg.AssetExecutionContext, **resources: Any) -> Iterator:
            selected = {c.name for c in context.selected_asset_check_keys}
            if key not in context.selected_asset_keys:
                lake = resources["lake_pipeline"]
                params = dict(references(lake)) if references else {}
                yield from committed_checks(gate, lake, selected, **params)
                return
            output = context.assets_def.get_output_name_for_asset_key(key)
            for event in body(context, **resources):
                if isinstance(event, dg.AssetCheckResult) and event.check_name not in selected:
                    continue
                if isinstance(event, dg.Output) and event.output_name != output:
                    event = dg.Output(
                        event.value,
                        output_name=output,
                        metadata=event.metadata,
                        data_version=event.data_version,
                        tags=event.tags,
                    )
                yield event

        return dg.multi_asset(
            specs=[definition],
            check_specs=gate.check_specs,
            can_subset=True,
            name=key.to_python_identifier(),
        )(run)

    return decorate


def committed_checks(
    gate: QualityGate, lake: S3LakeResource, selected: set[str], **params: Any
) -> Iterator[dg.AssetCheckResult]:
    """The ``selected`` family checks of ``gate`` on its table's committed version."""
    spec = gate.spec
    snapshot = read_snapshot(lake, spec.zone, spec.name)
    results = gate.evaluate(snapshot.table, {"delta_version": snapshot.version}, **params)
    yield from (r for r in results if r.check_name in selected)
