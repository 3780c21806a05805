"""Delta Lake tables on the S3 lake as a Dagster IO manager.

An asset keyed ``[<zone>, <name>]`` lives at ``s3://<prefix><zone>/<name>``. Each output is one
Delta commit (atomic: readers see all of it or none), tagged with the run id and a write id so
the version the commit produced is found exactly, even with other writers about. That version,
the row count and the table URI go into the materialization metadata, and the version becomes
the asset's data version.
"""

import uuid

import dagster as dg
import pandas as pd
import pyarrow as pa
from deltalake import CommitProperties, DeltaTable, write_deltalake

from mlsec_platform.resources.s3_lake import S3LakeResource
from mlsec_platform.settings import Zone
from mlsec_platform.storage.commits import committed_version
from mlsec_platform.storage.history import history_properties, keep_history

WRITE_MODE_KEY = "mlsec/write_mode"


class DeltaLakeS3IOManager(dg.ConfigurableIOManager):
    """Stores pyarrow Tables (or pandas DataFrames) as Delta tables, one commit per output."""

    lake: dg.ResourceDependency[S3LakeResource]
    #: Days of history each table keeps (``storage/history.py``); None: Delta's defaults.
    history_retention_days: int | None = None

    def _location(self, key: dg.AssetKey) -> tuple[Zone, str]:
        if len(key.path) != 2 or key.path[0] not in Zone.__members__.values():
            zones = ", ".join(z.value for z in Zone)
            raise dg.DagsterInvariantViolationError(
                f"asset {key.to_user_string()} must be keyed [<zone>, <name>] with zone in {zones}"
            )
        return Zone(key.path[0]), key.path[1]

    def handle_output(self, context: dg.OutputContext, obj: pa.Table | pd.DataFrame | None) -> None:
        if obj is None:
            return
        table = (
            pa.Table.from_pandas(obj, preserve_index=False)
            if isinstance(obj, pd.DataFrame)
            else obj
        )
        zone, name = self._location(context.asset_key)
        uri = self.lake.table_uri(zone, name)
        mode = context.definition_metadata.get(WRITE_MODE_KEY, "overwrite")
        write_id = str(uuid.uuid4())
        options = self.lake.storage_options()  # fails closed (VaultUnavailable) before any write
        days = self.history_retention_days
        write_deltalake(
            uri,
            table,
            mode=mode,
            schema_mode="overwrite" if mode == "overwrite" else None,
            # Applied when the table is made; an older table gets it below, once.
            configuration=history_properties(days) if days is not None else None,
            storage_options=options,
            commit_properties=CommitProperties(
                custom_metadata={
                    "mlsec.run_id": context.run_id,
                    "mlsec.write_id": write_id,
                    "mlsec.asset": context.asset_key.to_user_string(),
                }
            ),
        )
        table_after = DeltaTable(uri, storage_options=options)
        version = committed_version(table_after, "mlsec.write_id", write_id)
        if days is not None:
            keep_history(table_after, days)
        if mode == "overwrite":  # the version holds exactly these rows: later steps reuse them
            self.lake.committed.remember(uri, version, table)
        context.add_output_metadata(
            {
                "delta_version": version,
                "table_uri": dg.MetadataValue.text(uri),
                "dagster/row_count": table.num_rows,
                "zone": zone.value,
                "write_mode": mode,
            }
        )
        # The Delta version is the data version: downstream staleness follows real commits.
        context.step_context.set_data_version(context.asset_key, dg.DataVersion(str(version)))
        # Through the lake's own audit resource: one audit login per run and identity.
        self.lake.audit.emit(
            "asset.materialized",
            {
                "asset": context.asset_key.to_user_string(),
                "table_uri": uri,
                "delta_version": version,
                "rows": table.num_rows,
                "mode": mode,
            },
            run_id=context.run_id,
        )

    def load_input(self, context: dg.InputContext) -> pa.Table | pd.DataFrame:
        zone, name = self._location(context.asset_key)
        uri = self.lake.table_uri(zone, name)
        table = DeltaTable(uri, storage_options=self.lake.storage_options())
        context.add_input_metadata({"delta_version": table.version(), "table_uri": uri})
        data = table.to_pyarrow_table()
        if context.dagster_type.typing_type is pd.DataFrame:
            return data.to_pandas()
        return data
