"""Delta Lake tables on the S3 lake as a Dagster IO manager.

An asset keyed ``[<zone>, <name>]`` lives at ``s3://<prefix><zone>/<name>``. Each output is one
Delta commit (atomic: readers see all of it or none), tagged with the run id and a write id so
the version the commit produced is found exactly, even with other writers about. A table the
Spark engine wrote and staged under the table's root (``storage/engine_tables.py``) is committed
here the same way, as one version adding the staged files, without its rows ever coming to this
process. That version,
the row count and the table URI go into the materialization metadata, and the version becomes
the asset's data version. A :class:`CuratedBatch` (``storage/incremental.py``) records its inputs
in the commit, and may replace only the rows of the keys it holds (one version, written by
Delta's predicate overwrite: a MERGE would rewrite the files it touches with string views,
which pyarrow cannot compare, delta-rs issue 4579; on the Spark engine, by removing the files
that hold those keys and adding the staged ones, which hold their other rows too).
"""

import json
import uuid

import dagster as dg
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from deltalake import CommitProperties, DeltaTable, write_deltalake

from mlsec_platform.resources.s3_lake import S3LakeResource
from mlsec_platform.settings import Zone
from mlsec_platform.storage.commits import committed_version
from mlsec_platform.storage.engine_tables import StagedTable, commit_staged
from mlsec_platform.storage.history import curated_properties, keep_properties
from mlsec_platform.storage.incremental import INPUTS_KEY, CuratedBatch
from mlsec_platform.transforms.duck import run_sql

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
        self,
        context: dg.OutputContext,
        obj: pa.Table | pd.DataFrame | StagedTable | CuratedBatch | None,
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
        if isinstance(obj, CuratedBatch):
            commit_metadata[INPUTS_KEY] = json.dumps(dict(obj.inputs), sort_keys=True)
            if obj.replaces is not None:
                mode = "replace"
        version, rows = self._commit(uri, obj, mode, commit_metadata)
        context.add_output_metadata(
            {
                "delta_version": version,
                "table_uri": dg.MetadataValue.text(uri),
                "dagster/row_count": rows,
                "zone": zone.value,
                "write_mode": mode,
                # The rows of the changed keys; the row count is the table's.
                **({"replaced_rows": obj.replaced_rows} if mode == "replace" else {}),
                **_rewritten_files(obj),
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

    def _commit(self, uri: str, obj, mode: str, metadata: dict[str, str]) -> tuple[int, int]:
        """Commit ``obj`` as one Delta version; that version and the table's rows after it."""
        if mode == "replace":
            return self._replace(uri, obj, metadata)
        if isinstance(obj, CuratedBatch):
            obj = obj.table
        if isinstance(obj, StagedTable):
            if mode != "overwrite" or obj.uri != uri:
                raise dg.DagsterInvariantViolationError(
                    f"a staged table commits by overwrite to its own table, not {mode} to {uri}"
                )
            properties = curated_properties(self.history_retention_days)
            version, rows = commit_staged(self.lake, obj, metadata, properties)
            # A table made before its properties were set at creation gets them here, once.
            keep_properties(
                DeltaTable(uri, storage_options=self.lake.storage_options()),
                properties,
            )
            return version, rows
        table = (
            pa.Table.from_pandas(obj, preserve_index=False)
            if isinstance(obj, pd.DataFrame)
            else obj
        )
        version = self._write(uri, table, mode, metadata)
        if mode == "overwrite":  # the version holds exactly these rows: later steps reuse them
            self.lake.committed.remember(uri, version, table)
        return version, table.num_rows

    def _write(self, uri: str, table: pa.Table, mode: str, metadata: dict[str, str]) -> int:
        """One Delta commit of ``table``; the version it made."""
        options = self.lake.storage_options()  # fails closed (VaultUnavailable) before any write
        days = self.history_retention_days
        write_deltalake(
            uri,
            table,
            mode=mode,
            schema_mode="overwrite" if mode == "overwrite" else None,
            # Applied when the table is made; an older table gets them below, once.
            configuration=curated_properties(days),
            storage_options=options,
            commit_properties=CommitProperties(custom_metadata=metadata),
        )
        table_after = DeltaTable(uri, storage_options=options)
        version = committed_version(table_after, "mlsec.write_id", metadata["mlsec.write_id"])
        keep_properties(table_after, curated_properties(days))
        return version

    def _replace(self, uri: str, batch: CuratedBatch, metadata: dict[str, str]) -> tuple[int, int]:
        """One Delta commit replacing the rows of ``batch``'s keys with it; the version it made
        and the table's rows after it (counted from the log, not the files)."""
        if isinstance(batch.table, StagedTable):  # its files, less the ones it replaces
            if batch.table.removes is None or batch.table.uri != uri:
                raise dg.DagsterInvariantViolationError(
                    f"a staged replace commits the files it names to its own table, not {uri}"
                )
            return commit_staged(self.lake, batch.table, metadata)
        options = self.lake.storage_options()
        table = batch.table
        if table.num_rows == 0 and not batch.values:  # nothing to replace; still a version
            self._write(uri, table, "append", metadata)
        elif batch.merge and _holds_none_of(uri, options, batch):
            # New keys only (an event batch's, say): the MERGE would only insert them, and an
            # append is that insert without the MERGE's join over every file of the table
            # (random keys prune none). 50,000 new keys over 4M rows here: 21 s as a MERGE,
            # 6 s as this check and an append.
            self._write(uri, table, "append", metadata)
        elif batch.merge:
            key = '"' + batch.replaces.replace('"', '""') + '"'
            DeltaTable(uri, storage_options=options).merge(
                table,
                predicate=f"target.{key} = source.{key}",
                source_alias="source",
                target_alias="target",
                commit_properties=CommitProperties(custom_metadata=metadata),
            ).when_matched_update_all().when_not_matched_insert_all().execute()
        else:
            write_deltalake(
                uri,
                table,
                mode="overwrite",
                predicate=batch.predicate(),
                storage_options=options,
                commit_properties=CommitProperties(custom_metadata=metadata),
            )
        table_after = DeltaTable(uri, storage_options=options)
        version = committed_version(table_after, "mlsec.write_id", metadata["mlsec.write_id"])
        counts = pa.table(table_after.get_add_actions(flatten=True)).column("num_records")
        return version, int(pc.sum(counts).as_py() or 0)

    def load_input(self, context: dg.InputContext) -> pa.Table | pd.DataFrame:
        zone, name = self._location(context.asset_key)
        uri = self.lake.table_uri(zone, name)
        table = DeltaTable(uri, storage_options=self.lake.storage_options())
        context.add_input_metadata({"delta_version": table.version(), "table_uri": uri})
        data = table.to_pyarrow_table()
        if context.dagster_type.typing_type is pd.DataFrame:
            return data.to_pandas()
        return data


def _holds_none_of(uri: str, options: dict[str, str], batch: CuratedBatch) -> bool:
    """Whether the table holds none of ``batch``'s keys: one column scanned in Arrow, and the
    table not moved on since (a writer that did may have added some: then the MERGE, which
    reads the table again). What is left is a writer of the same table committing between this
    check and the append; Dagster's automation never runs a table twice at once. (DuckDB, not
    a pyarrow filter: Delta's file statistics are string views, which pyarrow cannot compare
    with a text value set.)"""
    target = DeltaTable(uri, storage_options=options)
    # The first match ends the scan: a batch of known keys (people whose rows change) pays
    # little for the question before its MERGE.
    found = run_sql(
        f'SELECT 1 FROM target WHERE "{batch.replaces}" IN (SELECT "{batch.replaces}" FROM batch)'
        " LIMIT 1",
        target=target.to_pyarrow_dataset(),
        batch=batch.table.select([batch.replaces]),
    )
    if found.num_rows:
        return False
    return DeltaTable(uri, storage_options=options).version() == target.version()


def _rewritten_files(obj) -> dict[str, int]:
    """How many files of the table an engine's replace rewrote (their other rows kept)."""
    staged = obj.table if isinstance(obj, CuratedBatch) else None
    if isinstance(staged, StagedTable) and staged.removes is not None:
        return {"rewritten_files": len(staged.removes)}
    return {}
