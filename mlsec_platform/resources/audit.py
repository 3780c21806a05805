"""The audit log as a Dagster resource: every secret fetch and materialization is recorded."""

from collections.abc import Mapping
from typing import Any

import dagster as dg
from pydantic import PrivateAttr

from mlsec_platform.audit.chain import AuditLog
from mlsec_platform.resources.leased_login import LeasedLogin
from mlsec_platform.resources.running_stack import StackAddressedResource, stack_address
from mlsec_platform.resources.vault import VaultResource


class AuditResource(StackAddressedResource):
    """Appends hash-chained events to ``audit.events`` with an INSERT-only login from Vault."""

    vault: dg.ResourceDependency[VaultResource]
    host: str | None = stack_address("Postgres host")
    port: int | None = stack_address("Postgres port")
    dbname: str = "warehouse"

    _log: AuditLog | None = PrivateAttr(default=None)
    _login: LeasedLogin | None = PrivateAttr(default=None)
    _run_id: str | None = PrivateAttr(default=None)
    _issued: list[str] = PrivateAttr(default_factory=list)

    stack_addresses = {"host": "postgres_host", "port": "postgres_port"}

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self._run_id = context.run.run_id if context.run else None

    def _audit_log(self) -> AuditLog:
        if self._log is None:
            host, port = self.address("host"), self.address("port")
            self._login = LeasedLogin(
                self.vault, "audit-writer", margin_seconds=30.0, on_issue=self._issued.append
            )
            self._log = AuditLog(
                lambda: self._login.connect(host, port, self.dbname),
                actor=self.vault.identity,
            )
        return self._log

    def emit(self, event_type: str, payload: Mapping[str, Any], run_id: str | None = None) -> str:
        """Record one event; raises AuditWriteError when it could not be recorded."""
        log = self._audit_log()
        run_id = run_id or self._run_id
        event_id = log.emit(event_type, payload, run_id=run_id)
        # The audit login is itself a secret fetch: recorded as soon as it can be.
        while self._issued:
            path = self._issued.pop()
            log.emit("secret.read", {"path": path, "identity": self.vault.identity}, run_id=run_id)
        return event_id

    def secret_read(self, path: str, **details: Any) -> None:
        """Record that this identity read a secret (the path, never the value)."""
        self.emit("secret.read", {"path": path, "identity": self.vault.identity, **details})

    def close(self) -> None:
        """Close the connection and give the audit login back to OpenBao."""
        if self._log is not None:
            self._log.close()
        if self._login is not None:
            self._login.revoke()

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        self.close()
