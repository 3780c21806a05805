"""The platform's tables as OpenLineage datasets, named as OpenLineage's naming conventions
say: a Delta table by its bucket (``s3://mlsec-silver``) and path (``customers``), a PostgreSQL
table by server (``postgres://host:port``) and ``database.schema.table``. Their facets come
from the catalog: the schema, the Delta version read or written, and where a column comes from
when the catalog says so (tokens and generalisations of a Raw column, columns Silver keeps as
Raw had them).
"""

from __future__ import annotations

from collections.abc import Iterable

import attr
from openlineage.client.event_v2 import InputDataset, OutputDataset
from openlineage.client.facet_v2 import (
    DatasetFacet,
    column_lineage_dataset,
    dataset_version_dataset,
    schema_dataset,
)

from mlsec_platform.catalog.datasets import CATALOG
from mlsec_platform.catalog.governance import DatasetSpec
from mlsec_platform.catalog.sources import EVENT_DOMAINS, FILE_SOURCES
from mlsec_platform.settings import PlatformSettings, Zone, bucket_name

#: Datasets that are neither in the lake nor the warehouse are named by their asset here.
PIPELINE_NAMESPACE = "mlsec-pipeline"


@attr.define
class DeltaTableDatasetFacet(DatasetFacet):
    """Custom facet: the Delta table version (also in ``version``) and the table's URI."""

    version: int
    tableUri: str  # noqa: N815 - OpenLineage's field naming

    @staticmethod
    def _get_schema() -> str:
        return "urn:mlsec-platform:facets:DeltaTableDatasetFacet"


class Datasets:
    """OpenLineage datasets of the platform's tables, with the catalog's facets."""

    def __init__(self, bucket_prefix: str, postgres: str, warehouse_db: str) -> None:
        self.bucket_prefix = bucket_prefix
        self.postgres = postgres
        self.warehouse_db = warehouse_db

    @classmethod
    def from_settings(cls, settings: PlatformSettings, postgres: str) -> Datasets:
        """``postgres``: ``host:port`` of the warehouse (the running stack's)."""
        return cls(settings.bucket_prefix, postgres, settings.warehouse_db)

    def delta(self, zone: Zone | str, name: str) -> tuple[str, str]:
        """Namespace and name of a Delta table of the lake."""
        return f"s3://{bucket_name(self.bucket_prefix, zone)}", name

    def of_asset(self, asset: str) -> tuple[str, str]:
        """Where asset ``<zone>/<name>`` keeps its table (``warehouse/x``: Postgres)."""
        zone, _, name = asset.partition("/")
        if zone == "warehouse":
            return f"postgres://{self.postgres}", f"{self.warehouse_db}.{name}"
        if zone in {z.value for z in Zone}:
            return self.delta(zone, name)
        return PIPELINE_NAMESPACE, asset  # reference data and others: named by their asset

    def online(self, dataset: str, version: int | None = None) -> InputDataset:
        """The online store table of feature dataset ``dataset`` (its latest row per entity)."""
        spec = CATALOG[dataset]
        assert spec.feature_group is not None, dataset
        facets = self.facets(dataset, None)
        if version is not None:  # the offline version the online rows were loaded from
            facets["version"] = dataset_version_dataset.DatasetVersionDatasetFacet(
                datasetVersion=str(version)
            )
        name = f"{self.warehouse_db}.{spec.feature_group.online_table}"
        return InputDataset(f"postgres://{self.postgres}", name, facets=facets)

    def facets(
        self, asset: str, version: int | None, inputs: Iterable[str] = (), columns=None
    ) -> dict[str, DatasetFacet]:
        """Schema (the catalog's, or only ``columns`` of it), Delta version and, for an
        output, column lineage from ``inputs`` where the catalog knows it."""
        facets: dict[str, DatasetFacet] = {}
        fields = schema_fields(asset, columns)
        if fields:
            facets["schema"] = schema_dataset.SchemaDatasetFacet(fields=fields)
        if version is not None:
            namespace, name = self.of_asset(asset)
            facets["version"] = dataset_version_dataset.DatasetVersionDatasetFacet(
                datasetVersion=str(version)
            )
            facets["deltaTable"] = DeltaTableDatasetFacet(
                version=version, tableUri=f"{namespace}/{name}"
            )
        lineage = self.column_lineage(asset, inputs)
        if lineage is not None:
            facets["columnLineage"] = lineage
        return facets

    def input(self, asset: str, version: int | None, columns=None) -> InputDataset:
        namespace, name = self.of_asset(asset)
        return InputDataset(namespace, name, facets=self.facets(asset, version, columns=columns))

    def output(
        self,
        asset: str,
        version: int | None,
        inputs: Iterable[str] = (),
        table: str | None = None,
    ) -> OutputDataset:
        """The table ``asset`` wrote at ``version``, made from ``inputs``. A warehouse load
        (``table``: its ``schema.table`` in Postgres) has no version of its own: it is the copy
        of its one input, whose schema it shows (the input carries the Delta version read)."""
        if table is not None and asset.startswith("warehouse/"):
            sources = list(inputs)
            fields = schema_fields(sources[0]) if len(sources) == 1 else []
            facets = {"schema": schema_dataset.SchemaDatasetFacet(fields=fields)} if fields else {}
            return OutputDataset(
                f"postgres://{self.postgres}", f"{self.warehouse_db}.{table}", facets=facets
            )
        namespace, name = self.of_asset(asset)
        return OutputDataset(namespace, name, facets=self.facets(asset, version, inputs))

    def column_lineage(
        self, asset: str, inputs: Iterable[str]
    ) -> column_lineage_dataset.ColumnLineageDatasetFacet | None:
        """Where each column of ``asset`` comes from among ``inputs``, as far as the catalog
        knows: a Silver column made from a Raw column (``from_column``: its tokens or its
        generalisation), or kept under its Raw name."""
        spec = CATALOG.get(asset)
        if spec is None:
            return None
        fields: dict[str, column_lineage_dataset.Fields] = {}
        for source in inputs:
            received = raw_columns(source)
            if received is None:
                continue
            namespace, name = self.of_asset(source)
            for column in spec.columns:
                origin = column.from_column or column.name
                if origin not in received:
                    continue
                masked = bool(column.tokenized or column.generalised)
                how = "MASKED" if masked else "IDENTITY"
                step = column_lineage_dataset.Transformation(
                    type="DIRECT",
                    subtype="TRANSFORMATION" if masked else "IDENTITY",
                    masking=masked,
                )
                field = column_lineage_dataset.InputField(namespace, name, origin, [step])
                entry = fields.setdefault(
                    column.name,
                    column_lineage_dataset.Fields(inputFields=[], transformationType=how),
                )
                entry.inputFields.append(field)
        return column_lineage_dataset.ColumnLineageDatasetFacet(fields=fields) if fields else None


def raw_columns(asset: str) -> dict[str, str] | None:
    """A Raw asset's (``raw/<source>``) contract columns and what each holds; None for any
    other asset."""
    zone, _, name = asset.partition("/")
    if zone != Zone.RAW.value:
        return None
    if name in FILE_SOURCES:
        return {c.name: f"as received ({c.kind})" for c in FILE_SOURCES[name].columns}
    for contract in EVENT_DOMAINS.values():
        if contract.source == name:
            return {field: "as received" for field in contract.fields}
    return None


def schema_fields(asset: str, columns=None) -> list[schema_dataset.SchemaDatasetFacetFields]:
    """The catalog's columns of ``asset`` (or a Raw contract's), optionally only ``columns``."""
    spec: DatasetSpec | None = CATALOG.get(asset)
    if spec is not None:
        wanted = None if columns is None else set(columns)
        return [
            schema_dataset.SchemaDatasetFacetFields(c.name, str(c.type), c.description)
            for c in spec.columns
            if wanted is None or c.name in wanted
        ]
    received = raw_columns(asset) or {}
    return [schema_dataset.SchemaDatasetFacetFields(n, "string", d) for n, d in received.items()]
