"""Operator actions (`mlsec` commands run by a person): Vault and audit access for them.

The operator acts with the bootstrap credentials of the ``local`` profile. Their audit events
go through a short-lived ``audit-writer`` login, with the operator as the actor.
"""

from __future__ import annotations

import getpass
from collections.abc import Iterator
from contextlib import contextmanager

import hvac
import psycopg2

from mlsec_platform.audit.chain import AuditLog
from mlsec_platform.settings import PlatformSettings
from mlsec_platform.stack.bootstrap import BootstrapCredentials


def operator_name() -> str:
    return f"operator:{getpass.getuser()}"


def operator_vault(settings: PlatformSettings) -> hvac.Client:
    return BootstrapCredentials.load(settings).vault(settings.endpoints())


def child_token(client: hvac.Client, *policies: str, ttl: str = "120s", uses: int = 0) -> str:
    """A short-lived token with only ``policies`` (e.g. ``reveal``), for one operator action."""
    created = client.auth.token.create(
        policies=list(policies), ttl=ttl, num_uses=uses, no_default_policy=True, renewable=False
    )
    return created["auth"]["client_token"]


@contextmanager
def operator_audit(settings: PlatformSettings, client: hvac.Client) -> Iterator[AuditLog]:
    """An audit log writing as the operator; the login is revoked afterwards."""
    endpoints = settings.endpoints()
    lease = client.read("database/creds/audit-writer")
    creds = lease["data"]

    def connect():
        return psycopg2.connect(
            host=endpoints.postgres_host,
            port=endpoints.postgres_port,
            dbname=settings.warehouse_db,
            user=creds["username"],
            password=creds["password"],
        )

    log = AuditLog(connect, actor=operator_name())
    try:
        log.emit("secret.read", {"path": "database/creds/audit-writer", "identity": "operator"})
        yield log
    finally:
        log.close()
        client.sys.revoke_lease(lease["lease_id"])
