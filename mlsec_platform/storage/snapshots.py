"""Reading a zone table at one pinned Delta version, and reporting what was read.

Curated assets read their inputs as snapshots: the Delta version read goes into the
materialization's ``lineage/inputs`` metadata, so from any Gold or feature row the asset graph
answers which Silver versions, and from those which Raw versions, it was built from.

A version this run committed itself is served from memory (``resources/committed.py``).
"""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import suppress
from dataclasses import dataclass
from functools import cached_property

import dagster as dg
import pyarrow as pa
import pyarrow.dataset as ds
from deltalake import DeltaTable
from deltalake.exceptions import TableNotFoundError

from mlsec_platform.resources.s3_lake import S3LakeResource
from mlsec_platform.settings import Zone


@dataclass(frozen=True)
class Snapshot:
    zone: Zone
    name: str
    uri: str
    version: int | None  # None: the table does not exist yet (read as empty)
    #: The files of that version; scanning it reads only the columns a query needs.
    dataset: ds.Dataset

    @cached_property
    def table(self) -> pa.Table:
        return pa.table(self.dataset.to_table())

    @property
    def asset(self) -> str:
        return f"{self.zone.value}/{self.name}"


def read_snapshot(
    lake: S3LakeResource,
    zone: Zone,
    name: str,
    *,
    columns: list[str] | None = None,
    schema: pa.Schema | None = None,
    version: int | None = None,
) -> Snapshot:
    """The table at ``version`` (default: latest). A missing table reads as empty ``schema``."""
    uri = lake.table_uri(zone, name)
    try:
        table = DeltaTable(uri, storage_options=lake.storage_options(), version=version)
    except TableNotFoundError:
        if schema is None:
            raise dg.Failure(
                f"{zone.value}/{name} does not exist yet: materialize it first"
            ) from None
        empty = schema if columns is None else pa.schema([schema.field(c) for c in columns])
        return Snapshot(zone, name, uri, None, ds.dataset(empty.empty_table()))
    dataset, version = table.to_pyarrow_dataset(), table.version()
    committed = lake.committed.get(uri, version)
    if committed is not None:  # this run committed that very version: no need to fetch it
        # Not what the files decode to? Then read them: the cache only ever saves time.
        with suppress(KeyError, pa.ArrowInvalid, pa.ArrowTypeError, NotImplementedError):
            dataset = ds.dataset(committed.select(dataset.schema.names).cast(dataset.schema))
    if columns is not None:
        dataset = ds.dataset(dataset.to_table(columns=columns))
    return Snapshot(zone, name, uri, version, dataset)


def lineage_metadata(snapshots: Iterable[Snapshot]) -> dict:
    """``lineage/inputs``: asset -> Delta version read, for the materialization's metadata."""
    return {
        "lineage/inputs": dg.MetadataValue.json({s.asset: s.version for s in snapshots}),
    }
