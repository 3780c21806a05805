"""Delta Lake tables on the S3 lake as a Dagster IO manager.

An asset keyed ``[<zone>, <name>]`` lives at ``s3://<prefix><zone>/<name>``. Each output is one
Delta commit (atomic: readers see all of it or none), tagged with the run id and a write id so
the version the commit produced is found exactly, even with other writers about. A table the
Spark engine wrote and staged under the table's root (``storage/engine_tables.py``) is committed
here the same way, as one version adding the staged files, without its rows ever coming to this
process. That version,
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
from mlsec_platform.storage.engine_tables import StagedTable, commit_staged
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

    def handle_output(
        self, context: dg.OutputContext, obj: pa.Table | pd.DataFrame | StagedTable | None
    ) -> None:
        if obj is None:
            return
        zone, name = self._location(context.asset_key)
        uri = self.lake.table_uri(zone, name)
        mode = context.definition_metadata.get(WRITE_MODE_KEY, "overwrite")
        write_id = str(uuid.uuid4())
        commit_metadata = {
            "mlsec.run_id": context.run_id,
            "mlsec.write_id": write_id,
            "mlsec.asset": context.asset_key.to_user_string(),
        }
        if isinstance(obj, StagedTable):
            if mode != "overwrite" or obj.uri != uri:
                raise dg.DagsterInvariantViolationError(
                    f"a staged table commits by overwrite to its own table, not {mode} to {uri}"
                )
            version, rows = commit_staged(self.lake, obj, commit_metadata)
            if self.history_retention_days is not None:
                # The engine's commit carries no table properties: set them here, once.
                keep_history(
                    DeltaTable(uri, storage_options=self.lake.storage_options()),
                    self.history_retention_days,
                )
        else:
            table = (
                pa.Table.from_pandas(obj, preserve_index=False)
                if isinstance(obj, pd.DataFrame)
                else obj
            )
            version, rows = self._write(uri, table, mode, commit_metadata), table.num_rows
            if mode == "overwrite":  # the version holds exactly these rows: later steps reuse
                self.lake.committed.remember(uri, version, table)
        context.add_output_metadata(
            {
                "delta_version": version,
                "table_uri": dg.MetadataValue.text(uri),
                "dagster/row_count": rows,
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
                "rows": rows,
                "mode": mode,
            },
            run_id=context.run_id,
        )

    def _write(self, uri: str, table: pa.Table, mode: str, metadata: dict[str, str]) -> int:
        """One Delta commit of ``table``; the version it made."""
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
            commit_properties=CommitProperties(custom_metadata=metadata),
        )
        table_after = DeltaTable(uri, storage_options=options)
        version = committed_version(table_after, "mlsec.write_id", metadata["mlsec.write_id"])
        if days is not None:
            keep_history(table_after, days)
        return version

    def load_input(self, context: dg.InputContext) -> pa.Table | pd.DataFrame:
        zone, name = self._location(context.asset_key)
        uri = self.lake.table_uri(zone, name)
        table = DeltaTable(uri, storage_options=self.lake.storage_options())
        context.add_input_metadata({"delta_version": table.version(), "table_uri": uri})
        data = table.to_pyarrow_table()
        if context.dagster_type.typing_type is pd.DataFrame:
            return data.to_pandas()
        return data
