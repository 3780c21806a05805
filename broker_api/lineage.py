"""The lineage of curated assets, read from the Dagster instance's event log.

Every broker response names what it served: the asset, the Delta version read, the run that
wrote it, when, the code version and the upstream versions that run read (``lineage/inputs``,
see ``mlsec_platform/storage/snapshots.py``). The broker reads them with a short-lived
``lineage-reader`` login from OpenBao (SELECT on the Dagster tables, read-only sessions), never
with the instance's owner login. Lineage is on every response's path, so the latest
materialization of each asset is kept for ``ttl_seconds``, and re-read ahead of that.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar

import dagster as dg
from dagster_postgres import PostgresEventLogStorage
from dagster_postgres.utils import get_conn_string
from psycopg2 import errors as pg_errors
from sqlalchemy.exc import ProgrammingError

from broker_api.errors import RequestRefused
from broker_api.refresh_ahead import RefreshAhead
from mlsec_platform.catalog.governance import DatasetSpec
from mlsec_platform.resources.leased_login import LeasedLogin
from mlsec_platform.resources.vault import VaultResource
from mlsec_platform.settings import get_settings

#: The Vault database role (``database/creds/<role>``) the broker's policy may read.
LINEAGE_ROLE = "lineage-reader"
CODE_VERSION_TAG = "dagster/code_version"
#: Materializations fetched per page while looking for one Delta version.
PAGE_SIZE = 100
#: Cached lineages kept at most (older entries are dropped all at once past it).
MAX_CACHED = 4096
#: A lineage query that takes longer than this is cancelled by Postgres.
STATEMENT_TIMEOUT_MS = 5_000

T = TypeVar("T")


@dataclass(frozen=True)
class AssetLineage:
    """Where one served version of an asset came from."""

    asset_key: str  #: e.g. ``gold/fact_order_item``
    delta_version: int
    run_id: str
    materialized_at: datetime  #: UTC
    #: The asset's ``code_version`` at that run; None if the asset defines none.
    code_version: str | None
    #: (upstream asset, Delta version it read) as the run recorded them; None: read as empty.
    upstream: tuple[tuple[str, int | None], ...]
    #: The materialization event's id in the event log.
    storage_id: int


def asset_key_of(spec: DatasetSpec) -> dg.AssetKey:
    """The key of the asset that materializes a catalog dataset."""
    return dg.AssetKey(list(spec.asset_path))


class LineageUnavailable(RequestRefused, LookupError):
    """No materialization records the asked asset (or version): serve nothing without it."""

    http_status = 404


def lineage_of(record: dg.EventLogRecord) -> AssetLineage:
    """The lineage an ASSET_MATERIALIZATION record carries."""
    materialization = record.asset_materialization
    if materialization is None:
        raise LineageUnavailable(f"event {record.storage_id} is not a materialization")
    key = materialization.asset_key.to_user_string()
    version = _delta_version(materialization)
    if version is None:
        raise LineageUnavailable(f"{key}: materialization {record.storage_id} has no Delta version")
    inputs = materialization.metadata.get("lineage/inputs")
    code_version = (materialization.tags or {}).get(CODE_VERSION_TAG)
    return AssetLineage(
        asset_key=key,
        delta_version=version,
        run_id=record.run_id,
        materialized_at=datetime.fromtimestamp(record.timestamp, UTC),
        # Dagster records the run id when the asset defines no code version.
        code_version=None if code_version in (None, record.run_id) else code_version,
        upstream=tuple((str(k), v) for k, v in (inputs.value if inputs else {}).items()),
        storage_id=record.storage_id,
    )


def _delta_version(materialization: dg.AssetMaterialization) -> int | None:
    value = materialization.metadata.get("delta_version")
    return None if value is None or value.value is None else int(value.value)


class LineageReader:
    """Reads asset lineage from the Dagster event log, read-only.

    ``connect`` returns the SQLAlchemy URL of a login that is valid now, the same URL for as
    long as that login lasts (the storage is rebuilt when it changes); ``revoke`` gives the
    login back on :meth:`close`. Thread-safe.
    """

    def __init__(
        self,
        connect: Callable[[], str],
        *,
        ttl_seconds: float = 1.0,
        revoke: Callable[[], None] = lambda: None,
        max_connections: int = 4,
    ) -> None:
        self._connect = connect
        self._revoke = revoke
        self._ttl = ttl_seconds
        self._max_connections = max_connections
        self._lock = threading.Lock()
        self._url: str | None = None
        self._storage: PostgresEventLogStorage | None = None
        self._cache: dict[tuple[dg.AssetKey, int], tuple[float, AssetLineage]] = {}
        #: The latest materialization of each asset, re-read ahead of its expiry: it is on
        #: every answer's path (:mod:`broker_api.refresh_ahead`).
        self._latest: RefreshAhead[dg.AssetKey, AssetLineage] = RefreshAhead(
            ttl_seconds, "lineage", max_entries=MAX_CACHED
        )

    @classmethod
    def from_vault(
        cls,
        vault: VaultResource,
        host: str,
        port: int,
        dbname: str,
        ttl_seconds: float = 1.0,
        *,
        renew_margin_seconds: float = 2.0,
        on_issue: Callable[[str], None] = lambda _path: None,
    ) -> LineageReader:
        """A reader on ``dbname`` (the Dagster database) with ``lineage-reader`` logins that
        ``vault`` (the broker identity) draws, each replaced ``renew_margin_seconds`` before
        its lease ends. ``on_issue`` is told the Vault path of each login drawn (for audit)."""
        login = LeasedLogin(
            vault, LINEAGE_ROLE, margin_seconds=renew_margin_seconds, on_issue=on_issue
        )

        def url() -> str:
            lease = login.current()
            return get_conn_string(
                username=lease.data["username"],
                password=lease.data["password"],
                hostname=host,
                port=str(port),
                db_name=dbname,
                params={
                    "application_name": f"mlsec-{vault.identity}-lineage",
                    **get_settings().postgres_tls(),
                },
                scheme="postgresql+psycopg2",
            )

        return cls(url, ttl_seconds=ttl_seconds, revoke=login.revoke)

    # -- queries ---------------------------------------------------------------------------------
    def latest(self, asset_key: dg.AssetKey) -> AssetLineage:
        """The lineage of the asset's latest materialization (at most ``ttl_seconds`` old)."""
        return self._latest.get(asset_key, lambda: self._read_latest(asset_key))

    def _read_latest(self, asset_key: dg.AssetKey) -> AssetLineage:
        records = self._query(lambda events: events.fetch_materializations(asset_key, 1).records)
        if not records:
            raise LineageUnavailable(f"{asset_key.to_user_string()} was never materialized")
        return lineage_of(records[0])

    def at_version(self, asset_key: dg.AssetKey, delta_version: int) -> AssetLineage:
        """The lineage of the materialization that produced ``delta_version`` of the asset.

        Looks from the newest materialization back and stops at the first older version: Delta
        versions grow with each commit, and a materialization is recorded after its commit.
        The latest of several loads of the same version wins (warehouse reloads).
        """
        cached = self._cached(asset_key, delta_version)
        if cached is not None:
            return cached
        latest = self._latest.peek(asset_key)
        if latest is not None and latest.delta_version == delta_version:
            return latest
        found = self._query(lambda events: self._find(events, asset_key, delta_version))
        if found is None:
            raise LineageUnavailable(
                f"no materialization of {asset_key.to_user_string()} produced "
                f"Delta version {delta_version}"
            )
        return self._remember(asset_key, delta_version, lineage_of(found))

    @staticmethod
    def _find(
        events: PostgresEventLogStorage, asset_key: dg.AssetKey, delta_version: int
    ) -> dg.EventLogRecord | None:
        cursor = None
        while True:
            page = events.fetch_materializations(asset_key, PAGE_SIZE, cursor=cursor)
            for record in page.records:
                materialization = record.asset_materialization
                version = _delta_version(materialization) if materialization else None
                if version == delta_version:
                    return record
                if version is not None and version < delta_version:
                    return None
            if not page.has_more:
                return None
            cursor = page.cursor

    def close(self) -> None:
        """Give the login back (its Postgres sessions end with it) and forget the cache."""
        with self._lock:
            self._storage, self._url = None, None
            self._cache.clear()
        self._latest.close()
        self._revoke()

    # -- internals -------------------------------------------------------------------------------
    def _cached(self, asset_key: dg.AssetKey, version: int) -> AssetLineage | None:
        hit = self._cache.get((asset_key, version))
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        return None

    def _remember(
        self, asset_key: dg.AssetKey, version: int, lineage: AssetLineage
    ) -> AssetLineage:
        with self._lock:
            if len(self._cache) >= MAX_CACHED:
                self._cache.clear()
            self._cache[(asset_key, version)] = (time.monotonic() + self._ttl, lineage)
        return lineage

    def _query(self, read: Callable[[PostgresEventLogStorage], T]) -> T:
        try:
            return read(self._events())
        except ProgrammingError as exc:
            # Dagster creates its tables at the instance's first use: nothing recorded yet.
            if isinstance(exc.orig, pg_errors.UndefinedTable):
                raise LineageUnavailable("the Dagster instance has recorded nothing yet") from None
            raise

    def _events(self) -> PostgresEventLogStorage:
        url = self._connect()
        with self._lock:
            if self._storage is None or url != self._url:
                # Never creates or migrates anything: the reader's sessions are read-only.
                storage = PostgresEventLogStorage(url, should_autocreate_tables=False)
                # One kept connection (plus overflow), each statement capped.
                storage.optimize_for_webserver(
                    statement_timeout=STATEMENT_TIMEOUT_MS,
                    pool_recycle=-1,
                    max_overflow=self._max_connections - 1,
                )
                self._storage, self._url = storage, url
            return self._storage
