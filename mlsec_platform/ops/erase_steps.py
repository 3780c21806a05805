"""The steps of one erasure, in the order ``ops/erase.py`` explains, on borrowed credentials."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

import dagster as dg

from mlsec_platform.catalog.governance import DatasetSpec
from mlsec_platform.ops.operator import CommandSession
from mlsec_platform.privacy.erasure.scope import ErasureScope, SubjectRecords, TableRule
from mlsec_platform.privacy.erasure.subject import Subject
from mlsec_platform.privacy.tokens import INDEX_KEY, IndexKey, fetch_index_key
from mlsec_platform.resources.borrowed import BorrowedVault, LoggedAudit
from mlsec_platform.resources.postgres import PostgresWarehouseResource
from mlsec_platform.resources.s3_lake import S3LakeResource
from mlsec_platform.settings import PlatformSettings, Zone
from mlsec_platform.storage.erasure.delta import (
    DeltaErasure,
    cut_history,
    erase_table,
    needs_cut,
    write_cut,
)
from mlsec_platform.storage.erasure.find import find_subject
from mlsec_platform.storage.erasure.objects import ObjectErasure, erase_objects
from mlsec_platform.storage.erasure.tokens import find_tokens, forget_tokens
from mlsec_platform.storage.erasure.warehouse import (
    WarehouseErasure,
    erase_from_warehouse,
    vacuum_changed,
)
from mlsec_platform.storage.raw_writer import open_table
from mlsec_platform.storage.sealing import seal
from mlsec_platform.storage.token_vault import TokenVault

Erasure = DeltaErasure | WarehouseErasure | ObjectErasure


def borrowed_lake(
    settings: PlatformSettings, session: CommandSession, identity: str
) -> S3LakeResource:
    """The lake with ``identity``'s S3 keys, read on the operator command's token and audited
    in its log (the token's policy says whose keys it may read)."""
    vault = BorrowedVault.on(session.vault, identity)
    return S3LakeResource(
        vault=vault,
        audit=LoggedAudit.on(session.audit, vault),
        endpoint_url=settings.endpoints().s3_endpoint,
        region=settings.s3_region,
        bucket_prefix=settings.bucket_prefix,
        committed_cache_bytes=0,
    )


@dataclass
class ErasureRun:
    """One erasure's context: the operator's session, the catalog scope, its id."""

    settings: PlatformSettings
    session: CommandSession
    instance: dg.DagsterInstance
    scope: ErasureScope
    erasure_id: str
    echo: Callable[[str], None]

    def _lake(self, identity: str) -> S3LakeResource:
        return borrowed_lake(self.settings, self.session, identity)

    @cached_property
    def lifecycle(self) -> S3LakeResource:
        """Raw and Cold."""
        return self._lake("lifecycle")

    @cached_property
    def eraser(self) -> S3LakeResource:
        """Landing, quarantine and the token vault: an S3 user only erasures use."""
        return self._lake("eraser")

    @cached_property
    def pipeline(self) -> S3LakeResource:
        """Silver, Gold and features."""
        return self._lake("pipeline")

    @cached_property
    def token_vault(self) -> TokenVault:
        """The vault with the eraser's keys (it deletes there) and the index key, which the
        operator's token unwraps as the pipeline's does (finding tokens, opening nothing)."""
        lake, audit = self.eraser, self.session.audit

        def index_key() -> IndexKey:
            key = fetch_index_key(lake.vault)  # on the operator's token: the eraser has none
            audit.emit("secret.read", {"path": f"transit/decrypt/{INDEX_KEY}", "for": "erasure"})
            return key

        return TokenVault.on_lake(lake, index_key=index_key)

    @cached_property
    def warehouse(self) -> PostgresWarehouseResource:
        endpoints = self.settings.endpoints()
        vault = BorrowedVault.on(self.session.vault, "pipeline")
        return PostgresWarehouseResource(
            vault=vault,
            audit=LoggedAudit.on(self.session.audit, vault),
            host=endpoints.postgres_host,
            port=endpoints.postgres_port,
            dbname=self.settings.warehouse_db,
            role="warehouse-writer",
        )


class Ledger:
    """What the erasure searched and what each place lost, audited as it happens: a killed
    erasure's removals are in the audit log although its receipt was never written."""

    def __init__(self, run: ErasureRun) -> None:
        self.run = run
        self.searched: list[str] = []
        self.removed: list[dict] = []

    def record(self, done: Erasure | None) -> None:
        if done is None:  # no such table: nothing to search
            return
        entry = done.receipt_entry()
        self.searched.append(entry["place"])
        if done.changed:
            self.removed.append(entry)
            self.run.session.audit.emit("erasure.removed", {"id": self.run.erasure_id, **entry})


def erase_everywhere(run: ErasureRun, subject: Subject) -> tuple[list[str], list[dict], bool]:
    """(places searched, what each changed place lost, whether the subject was found)."""
    scope, echo, ledger = run.scope, run.echo, Ledger(run)
    for source in scope.raw_tables:  # a killed lifecycle run or erasure may have left it lifted
        if seal(run.lifecycle, source, None):
            run.session.audit.emit("lifecycle.resealed", {"source": source, "by": "erasure"})
    records = find_subject(run.lifecycle, scope, subject)
    if records.found:
        find_tokens(run.token_vault, run.pipeline, scope, records)
    versions: dict[str, int] = {}
    for dataset_id, rule in scope.curated.items():
        spec = scope.dataset(dataset_id)
        done = _erase_delta(run, run.pipeline, spec.zone, spec.name, rule, records, spec)
        if done is not None and done.version_after is not None:
            versions[dataset_id] = done.version_after
        ledger.record(done)
    echo(f"  curated    {len(scope.curated)} tables searched")
    # No curated table refers to the tokens any more: the vault forgets them.
    ledger.record(
        forget_tokens(run.eraser, scope.token_domain, records.tokens, run.warehouse.connection)
    )
    with run.warehouse.connection() as conn:
        erased = erase_from_warehouse(conn, scope, records, versions, run.erasure_id)
    with run.warehouse.autocommit() as conn:
        vacuum_changed(conn, erased)
    for done in erased:
        ledger.record(done)
    for zone in (Zone.QUARANTINE, Zone.LANDING):
        for done in erase_objects(run.eraser, zone, records.needles(), run.erasure_id):
            ledger.record(done)
        ledger.searched.append(f"{zone.value}/*")
    echo("  warehouse, online store, quarantine and landing searched")
    for zone in (Zone.COLD, Zone.RAW):
        for source, columns in scope.raw_tables.items():
            rule = scope.rule(columns)
            ledger.record(_erase_delta(run, run.lifecycle, zone, source, rule, records))
    echo(f"  cold, raw  {len(scope.raw_tables)} sources searched")
    return ledger.searched, ledger.removed, records.found


def _erase_delta(
    run: ErasureRun,
    lake: S3LakeResource,
    zone: Zone,
    name: str,
    rule: TableRule,
    records: SubjectRecords,
    spec: DatasetSpec | None = None,
) -> DeltaErasure | None:
    """Remove, then cut; a curated table's readers learn the cut (fail closed while it runs)."""
    done = erase_table(lake, zone, name, rule, records.keys, records.text_needles(), run.erasure_id)
    if done is None:
        return None
    table = open_table(lake.table_uri(zone, name), lake.storage_options())
    if table is None or not needs_cut(table):
        return done
    if spec is not None:  # versions before the removal now hold the subject only
        write_cut(lake, zone, name, table.version(), run.erasure_id)
    cut, files, log = cut_history(lake, zone, name)
    if spec is not None:
        run.instance.report_runless_asset_event(
            dg.AssetMaterialization(
                asset_key=list(spec.asset_path),
                description=f"Erasure {run.erasure_id}: one data subject removed",
                metadata={
                    "delta_version": cut,
                    "mlsec/erasure": run.erasure_id,
                    "rows_removed": done.rows_removed,
                },
            )
        )
        write_cut(lake, zone, name, cut, run.erasure_id)
    return DeltaErasure(
        done.place,
        rows_removed=done.rows_removed,
        texts_redacted=done.texts_redacted,
        version_before=done.version_before,
        version_after=cut,
        files_removed=files,
        log_entries_removed=log,
    )
