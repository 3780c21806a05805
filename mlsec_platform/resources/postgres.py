"""The Postgres warehouse, reached with short-lived users issued by Vault."""

from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg
from psycopg2.extensions import connection as PgConnection
from pydantic import PrivateAttr

from mlsec_platform.resources.audit import AuditResource
from mlsec_platform.resources.leased_login import LeasedLogin
from mlsec_platform.resources.running_stack import StackAddressedResource, stack_address
from mlsec_platform.resources.vault import VaultResource


class PostgresWarehouseResource(StackAddressedResource):
    """The Postgres warehouse, reached with short-lived users from Vault (never a static password).

    ``role`` is the Vault database role: ``warehouse-writer`` for assets that load tables,
    ``warehouse-reader`` for readers (read-only sessions).
    """

    vault: dg.ResourceDependency[VaultResource]
    audit: dg.ResourceDependency[AuditResource]
    host: str | None = stack_address("Postgres host")
    port: int | None = stack_address("Postgres port")
    dbname: str = "warehouse"
    role: str = "warehouse-writer"
    renew_margin_seconds: float = 30.0

    _login: LeasedLogin | None = PrivateAttr(default=None)

    stack_addresses = {"host": "postgres_host", "port": "postgres_port"}

    def _leased(self) -> LeasedLogin:
        if self._login is None:
            self._login = LeasedLogin(
                self.vault,
                self.role,
                margin_seconds=self.renew_margin_seconds,
                on_issue=lambda path: self.audit.secret_read(path, purpose="warehouse"),
            )
        return self._login

    @contextmanager
    def connection(self) -> Iterator[PgConnection]:
        """A connection in one transaction: committed on success, rolled back on error."""
        host, port = self.address("host"), self.address("port")
        conn = self._leased().connect(host, port, self.dbname)
        try:
            with conn:
                yield conn
        finally:
            conn.close()

    @contextmanager
    def autocommit(self) -> Iterator[PgConnection]:
        """A connection where each statement is its own transaction (``VACUUM`` needs one)."""
        conn = self._leased().connect(self.address("host"), self.address("port"), self.dbname)
        conn.autocommit = True
        try:
            yield conn
        finally:
            conn.close()

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._login is not None:
            self._login.revoke()
