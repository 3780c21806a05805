"""One dynamic Postgres login from Vault's database engine, replaced before its lease ends."""

import threading
from collections.abc import Callable

import psycopg2
from psycopg2.extensions import connection as PgConnection

from mlsec_platform.resources.vault import Lease, VaultResource
from mlsec_platform.settings import get_settings


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
            **get_settings().postgres_tls(),
            **options,
        )

    def revoke(self) -> None:
        with self._lock:
            if self._lease is not None:
                self._vault.revoke_lease(self._lease)
            self._lease = None
