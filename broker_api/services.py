"""What the broker holds, all obtained as the `broker` identity from OpenBao at start.

Read-only S3 keys for the curated buckets, short-lived Postgres logins (warehouse reader for
the online store, lineage reader for the Dagster event log, audit writer), and its own keys
for keyed-hash masking and cursor signing. It holds no write credential to any zone.
"""

from __future__ import annotations

import asyncio
import base64
import threading
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from types import MappingProxyType
from typing import Any

import psycopg2
import pyarrow as pa
from psycopg2.extensions import connection as PgConnection

from broker_api.audit import AuditSink
from broker_api.budgets import DisclosureBudgets
from broker_api.cursor import CursorSigner
from broker_api.detection import ExfiltrationWatch
from broker_api.erasures import ErasureCuts
from broker_api.errors import RequestRefused
from broker_api.identity import JwksVerifier, http_jwks, transit_jwks
from broker_api.lineage import LineageReader
from broker_api.masking import Masker
from broker_api.metrics import BrokerMetrics, ScrapeCredential
from broker_api.observed import ObservedRequests
from broker_api.policy.files import load_policy
from broker_api.receipts import ReceiptSigner
from broker_api.shared_limits import SharedRateLimiter, SharedRowQuota, SharedSlots
from broker_api.snapshots import SnapshotCache, SnapshotEngine
from mlsec_platform.audit.chain import AuditWriteError
from mlsec_platform.catalog.governance import DatasetSpec
from mlsec_platform.errors import ConfigurationError
from mlsec_platform.identities.catalog import BROKER_KEYS, ROW_SCOPE_SIGNING_KEY
from mlsec_platform.privacy.reveal import reveal as reveal_tokens
from mlsec_platform.resources.identity import IdentityResources, identity_resources
from mlsec_platform.resources.leased_login import LeasedLogin
from mlsec_platform.resources.vault import VaultError
from mlsec_platform.serving.counters import SharedCounters
from mlsec_platform.serving.disclosures import SharedDisclosures
from mlsec_platform.settings import PlatformSettings
from mlsec_platform.storage.row_scope import ROW_SCOPE_SETTING, SESSION_SQL, RowScopeSigner
from mlsec_platform.storage.token_vault import TokenVault
from mlsec_platform.telemetry.datasets import Datasets
from mlsec_platform.telemetry.lineage import LineageEmitter
from mlsec_platform.telemetry.request_log import RequestLog

#: The identity whose only powers are reading the token vault and unwrapping its data keys;
#: used for entitled, reasoned reveal requests only.
REVEALER = "revealer"


class OnlineStoreUnavailable(RequestRefused):
    """The warehouse holding the online feature store does not answer: retry shortly."""

    http_status = 503
    headers = MappingProxyType({"Retry-After": "5"})


class RevealRefused(RequestRefused, PermissionError):
    """OpenBao refused to reveal (the revealer's policy, a retired key version)."""

    http_status = 403


class RevealUnavailable(RequestRefused):
    """Revealing needs OpenBao and the audit log, and one of them does not answer."""

    http_status = 503


class OnlineStore:
    """Reads the warehouse as ``warehouse_reader`` with the caller's row scope set, signed for
    the connection's backend, so the warehouse's own row-level security applies too (defence
    in depth, and the only guard a leaked reader login meets: it cannot sign a scope)."""

    def __init__(
        self, login: LeasedLogin, host: str, port: int, dbname: str, signer: RowScopeSigner
    ) -> None:
        self._login = login
        self._where = (host, port, dbname)
        self._signer = signer
        self._local = threading.local()

    def _connection(self) -> PgConnection:
        lease = self._login.current()
        conn: PgConnection | None = getattr(self._local, "conn", None)
        if conn is None or conn.closed or self._local.lease_id != lease.lease_id:
            if conn is not None and not conn.closed:
                conn.close()
            conn = self._login.connect(*self._where)
            conn.set_session(readonly=True, autocommit=True)
            with conn.cursor() as cur:  # once per connection: the backend the MAC binds to
                cur.execute(SESSION_SQL)
                backend = cur.fetchone()
            self._local.conn, self._local.lease_id = conn, lease.lease_id
            self._local.backend, self._local.signed = backend, {}
        return conn

    def _signed(self, row_scope: str) -> str:
        """The setting value for ``row_scope`` on this thread's connection (signed once per
        connection and scope: a project's scope repeats on every request)."""
        signed: dict[str, str] = self._local.signed
        value = signed.get(row_scope)
        if value is None:
            if len(signed) > 1024:  # scopes come from the policy file; bound it all the same
                signed.clear()
            value = signed[row_scope] = self._signer.sign(row_scope, *self._local.backend)
        return value

    def fetch(self, sql: str, params: Sequence[Any], row_scope: str) -> list[tuple]:
        """The rows of one read-only ``sql`` (``%s`` placeholders) under the RLS scope
        ``row_scope`` ('*', 'SP,RJ' or '').

        One round trip: the scope and the query go as one message, which Postgres runs as one
        implicit transaction, so the transaction-local scope covers the query and ends with
        it (a transaction of its own cost three more round trips: BEGIN, SET, ROLLBACK).
        Raises OnlineStoreUnavailable when the warehouse cannot be reached or fails the read."""
        try:
            conn = self._connection()
            try:
                with conn.cursor() as cur:
                    cur.execute(
                        f"SELECT set_config('{ROW_SCOPE_SETTING}', %s, true); {sql}",
                        (self._signed(row_scope), *params),
                    )
                    return cur.fetchall()
            except psycopg2.Error:
                conn.close()
                raise
        except psycopg2.Error:
            raise OnlineStoreUnavailable("the online feature store is unavailable") from None


class BrokerServices:
    def __init__(
        self,
        settings: PlatformSettings,
        broker: IdentityResources,
        scrape: ScrapeCredential | None = None,
    ) -> None:
        endpoints = settings.endpoints()
        pg = (endpoints.postgres_host, endpoints.postgres_port)
        self.settings = settings
        self.vault = vault = broker.vault
        self.metrics = BrokerMetrics()
        # Read already when the process started as root and then became the broker's user,
        # who may not read the operator's file (ops/serve.py).
        self.scrape = (
            scrape
            if scrape is not None
            else ScrapeCredential.from_file(settings.broker_metrics_credential_file)
        )
        self.observed = ObservedRequests(
            self.metrics,
            RequestLog("broker"),
            LineageEmitter.from_settings(settings, registry=self.metrics.registry),
            Datasets.from_settings(settings, f"{pg[0]}:{pg[1]}"),
        )
        # Secret reads of the broker itself (S3 keys, its own keys) are audited like any other.
        self.audit = broker.audit
        self._start_audit_sink(pg)
        self.lake = broker.lake
        self.snapshots = SnapshotCache(
            self._table_uri, self.lake.storage_options, max_bytes=settings.broker_cache_bytes
        )
        self.engine = SnapshotEngine(self.snapshots)
        self.erasure_cuts = ErasureCuts(self.lake, ttl_seconds=settings.broker_lineage_ttl)
        self.lineage = LineageReader.from_vault(
            vault, pg[0], pg[1], settings.dagster_db, ttl_seconds=settings.broker_lineage_ttl
        )
        keys = vault.read_kv(BROKER_KEYS)
        self.audit.secret_read(f"mlsec/{BROKER_KEYS}", purpose="masking, cursor and scope keys")
        if not keys.get(ROW_SCOPE_SIGNING_KEY):
            # A stack bootstrapped by an earlier release: the warehouse would show no row.
            raise ConfigurationError(
                f"OpenBao holds no {ROW_SCOPE_SIGNING_KEY} for the broker: run `mlsec bootstrap`"
            )
        self._reader_login = LeasedLogin(vault, "warehouse-reader", margin_seconds=2.0)
        self.online = OnlineStore(
            self._reader_login,
            *pg,
            settings.warehouse_db,
            RowScopeSigner(base64.b64decode(keys[ROW_SCOPE_SIGNING_KEY])),
        )
        fetch = (
            http_jwks(settings.broker_jwks_url)
            if settings.broker_jwks_url
            else (lambda: transit_jwks(vault.client()))
        )
        self.verifier = JwksVerifier(
            fetch,
            issuer=settings.broker_issuer,
            audience=settings.broker_audience,
            algorithms=settings.broker_token_algorithms,
            max_lifetime_seconds=settings.token_max_lifetime,
        )
        self.policy = load_policy(settings.broker_policy_dir)
        self.masker = Masker(base64.b64decode(keys["masking_hash_key"]))
        self.cursors = CursorSigner(base64.b64decode(keys["cursor_signing_key"]))
        self.receipts = ReceiptSigner(vault.client)
        self._share_limits(pg)
        self._guard_disclosure(pg, base64.b64decode(keys["masking_hash_key"]))
        #: Blocking work of requests (DuckDB, Postgres, OpenBao) runs here, off the event loop.
        self.executor = ThreadPoolExecutor(
            max_workers=settings.broker_max_concurrent_queries, thread_name_prefix="broker"
        )
        self._revealer: IdentityResources | None = None
        self._reveal_lock = threading.Lock()

    def _start_audit_sink(self, pg: tuple[str, int]) -> None:
        """The audit sink: events committed in groups on a Vault-issued audit-writer login."""
        audit_login = LeasedLogin(self.vault, "audit-writer", margin_seconds=60.0)
        database = self.settings.warehouse_db

        async def audit_connection() -> PgConnection:
            # The login may need a Vault round trip: off the event loop. The connection itself
            # is non-blocking (the sink drives it on the loop).
            return await asyncio.get_running_loop().run_in_executor(
                None, lambda: audit_login.connect(*pg, database, async_=True)
            )

        self.sink = AuditSink(
            audit_connection,
            actor="broker",
            on_depth=self.metrics.audit_queue_depth.set,
            on_failure=self.metrics.audit_failures_total.inc,
            on_commit=self.metrics.audit_commit_seconds.observe,
        )
        self._audit_login = audit_login

    def _share_limits(self, pg: tuple[str, int]) -> None:
        """Rates, quota and in-flight slots, counted with the other replicas in Postgres."""
        self._limits_login = LeasedLogin(self.vault, "limits-keeper", margin_seconds=60.0)
        self.counters = SharedCounters(
            lambda: self._limits_login.connect(*pg, self.settings.warehouse_db),
            login_id=lambda: self._limits_login.current().lease_id,
            holder=f"broker-{uuid.uuid4()}",
        )
        self.limiter = SharedRateLimiter(self.counters)
        self.quota = SharedRowQuota(self.counters)
        self.concurrency = SharedSlots(
            self.counters, global_cap=self.settings.broker_max_concurrent_queries
        )

    def _guard_disclosure(self, pg: tuple[str, int], key: bytes) -> None:
        """Disclosure budgets and exfiltration detection, counted with the other replicas in
        Postgres (on a connection of their own, as a limits keeper)."""
        self.disclosures = SharedDisclosures(
            lambda: self._limits_login.connect(*pg, self.settings.warehouse_db),
            login_id=lambda: self._limits_login.current().lease_id,
            holder=self.counters.holder,
        )
        self.budgets = DisclosureBudgets(self.disclosures, key, self.metrics.registry)
        self.watch = ExfiltrationWatch(
            self.disclosures,
            key,
            lambda: self.policy.guards,
            self.audit.emit,
            self.metrics.registry,
        )

    def reveal(
        self,
        table: pa.Table,
        columns: Sequence[str],
        *,
        spec: DatasetSpec,
        subject: str,
        reason: str,
        request_id: str,
    ) -> pa.Table:
        """Tokenized ``columns`` of ``spec`` back in clear, each in its catalog token domain,
        read from the token vault and opened with data keys OpenBao unwraps for the separate
        ``revealer`` identity (the broker's own keys can do neither). Each column's reveal is
        recorded (severity high, fingerprints only) before any value is returned. Raises
        RevealRefused (403) or RevealUnavailable (503)."""
        try:
            return self._reveal(
                table, columns, spec=spec, subject=subject, reason=reason, request_id=request_id
            )
        except PermissionError as exc:
            raise RevealRefused(str(exc)) from None
        except (VaultError, AuditWriteError, OSError) as exc:
            raise RevealUnavailable(f"reveal unavailable: {exc}") from None

    def _reveal(
        self,
        table: pa.Table,
        columns: Sequence[str],
        *,
        spec: DatasetSpec,
        subject: str,
        reason: str,
        request_id: str,
    ) -> pa.Table:
        with self._reveal_lock:
            if self._revealer is None:
                self._revealer = identity_resources(
                    self.settings, REVEALER, self.settings.endpoints()
                )
        vault = TokenVault.on_lake(self._revealer.lake)
        for name in columns:
            values = table.column(name).to_pylist()
            tokens = sorted({v for v in values if v is not None})
            if not tokens:
                continue

            def emit(event_type: str, payload: dict, column: str = name) -> None:
                self.audit.emit(event_type, {**payload, "column": column, "request_id": request_id})

            clear = dict(
                zip(
                    tokens,
                    reveal_tokens(
                        self._revealer.vault.client(),
                        vault,
                        tokens,
                        domain=spec.column(name).token_domain,
                        subject=subject,
                        reason=reason,
                        emit=emit,
                    ),
                    strict=True,
                )
            )
            index = table.column_names.index(name)
            table = table.set_column(
                index, name, pa.array([clear.get(v) for v in values], pa.string())
            )
        return table

    def _table_uri(self, spec: DatasetSpec) -> str:
        return self.lake.table_uri(spec.zone, spec.name)

    @classmethod
    def from_settings(
        cls, settings: PlatformSettings, scrape: ScrapeCredential | None = None
    ) -> BrokerServices:
        return cls(settings, identity_resources(settings, "broker", settings.endpoints()), scrape)

    def close(self) -> None:
        self.executor.shutdown(wait=True, cancel_futures=True)
        self.observed.lineage.close(timeout=2.0)  # a receiver that is down holds nothing up
        self.concurrency.close()
        self.quota.close()
        self.watch.close()
        self.disclosures.close()
        self.counters.close()
        self._limits_login.revoke()
        self.sink.close()
        self.engine.close()
        self.lineage.close()
        self._reader_login.revoke()
        self._audit_login.revoke()
        self.audit.close()
        if self._revealer is not None:
            self._revealer.audit.close()
            self._revealer.vault.revoke()
        self.vault.revoke()
