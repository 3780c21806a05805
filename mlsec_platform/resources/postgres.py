"""PostgreSQL logins issued by Vault's database engine, re-issued before their lease ends."""

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import dagster as dg
import psycopg2
from psycopg2.extensions import connection as PgConnection
from pydantic import PrivateAttr

from mlsec_platform.resources.vault import Lease, VaultResource


class LeasedLogin:
    """Holds one dynamic Postgres login and replaces it when its lease runs low."""

    def __init__(
        self,
        vault: VaultResource,
        role: str,
        *,
        margin_seconds: float,
        on_issue: Callable[[str], None] = lambda _path: None,
    ) -> None:
        self._vault = vault
        self._path = f"database/creds/{role}"
        self._margin = margin_seconds
        self._on_issue = on_issue
        self._lease: Lease | None = None
        self._lock = threading.Lock()

    def current(self) -> Lease:
        with self._lock:
            if self._lease is None or self._lease.remaining() < self._margin:
                self._lease = self._vault.lease(self._path)
                self._on_issue(self._path)
            return self._lease

    def connect(self, host: str, port: int, dbname: str, **options) -> PgConnection:
        lease = self.current()
        return psycopg2.connect(
            host=host,
            port=port,
            dbname=dbname,
            user=lease.data["username"],
            password=lease.data["password"],
            connect_timeout=5,
            application_name=f"mlsec-{self._vault.identity}",
            **options,
        )

    def revoke(self) -> None:
        with self._lock:
            if self._lease is not None:
                self._vault.revoke_lease(self._lease)
            self._lease = None


class PostgresWarehouseResource(dg.ConfigurableResource):
    """The Postgres warehouse, reached with short-lived users from Vault (never a static password).

    ``role`` is the Vault database role: ``warehouse-writer`` for assets that load tables,
    ``warehouse-reader`` for readers (read-only sessions).
    """

    vault: dg.ResourceDependency[VaultResource]
    host: str
    port: int
    dbname: str = "warehouse"
    role: str = "warehouse-writer"
    renew_margin_seconds: float = 30.0

    _login: LeasedLogin | None = PrivateAttr(default=None)

    def _leased(self) -> LeasedLogin:
        if self._login is None:
            self._login = LeasedLogin(
                self.vault, self.role, margin_seconds=self.renew_margin_seconds
            )
        return self._login

    @contextmanager
    def connection(self) -> Iterator[PgConnection]:
        """A connection in one transaction: committed on success, rolled back on error."""
        conn = self._leased().connect(self.host, self.port, self.dbname)
        try:
            with conn:
                yield conn
        finally:
            conn.close()

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._login is not None:
            self._login.revoke()
