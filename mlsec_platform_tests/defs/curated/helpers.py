"""Reading curated tables the way the pipeline does (its own identity)."""

from __future__ import annotations

import pyarrow as pa
from deltalake import DeltaTable

from mlsec_platform.settings import Zone


def read(curated, zone: Zone | str, name: str, columns=None) -> pa.Table:
    lake = curated.resources["lake_pipeline"]
    table = DeltaTable(lake.table_uri(Zone(zone), name), storage_options=lake.storage_options())
    return pa.table(table.to_pyarrow_dataset().to_table(columns=columns))


def version(curated, zone: Zone | str, name: str) -> int:
    lake = curated.resources["lake_pipeline"]
    return DeltaTable(
        lake.table_uri(Zone(zone), name), storage_options=lake.storage_options()
    ).version()
