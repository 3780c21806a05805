"""The catalog as Dagster shows it: asset keys, column schemas with governance tags, metadata.

The catalog itself (:mod:`mlsec_platform.catalog`) imports no Dagster; these adapters turn a
dataset entry into what its asset declares.
"""

from __future__ import annotations

import dagster as dg

from mlsec_platform.catalog.governance import DatasetSpec
from mlsec_platform.settings import get_settings


def asset_key(spec: DatasetSpec) -> dg.AssetKey:
    return dg.AssetKey(list(spec.asset_path))


def column_schema(spec: DatasetSpec) -> dg.TableSchema:
    return dg.TableSchema(
        columns=[
            dg.TableColumn(
                c.name,
                str(c.type),
                description=c.description,
                constraints=dg.TableColumnConstraints(nullable=c.nullable),
                tags=c.tags(),
            )
            for c in spec.columns
        ]
    )


def asset_metadata(spec: DatasetSpec) -> dict:
    return {
        "dagster/column_schema": column_schema(spec),
        "catalog/version": spec.version,
        "catalog/key": ", ".join(spec.key),
        "catalog/purposes": ", ".join(sorted(p.value for p in spec.purposes)),
        "catalog/row_security_key": spec.row_security_key or "",
    }


def engine_kinds() -> set[str]:
    """The kinds of a curated table: Delta on S3, made by the engine the settings name (each
    materialization's metadata also says which engine ran)."""
    return {"delta", "s3", get_settings().engine}
