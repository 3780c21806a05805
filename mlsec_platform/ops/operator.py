"""Operator actions (`mlsec` commands run by a person): their OpenBao login and audit log.

Each command logs in as the operator (``identities/operators.py``), takes a token that holds
only its own policies, and writes its audit events through a short-lived ``audit-writer``
login with the operator's OpenBao name as the actor. The root token is used by none of them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime

import hvac
import psycopg2
from psycopg2.extensions import connection as PgConnection

from mlsec_platform.audit.chain import AuditLog
from mlsec_platform.identities.operators import (
    ROOT_REVOKED,
    ROOT_TOKEN,
    OperatorLogin,
    credential_path,
)
from mlsec_platform.identities.vault_client import vault_client
from mlsec_platform.ops.refusals import NotApplicable
from mlsec_platform.settings import PlatformSettings
from mlsec_platform.stack.secret_files import read_secret


class NoRootToken(NotApplicable):
    """There is no root token left to revoke."""


@contextmanager
def operator_login(settings: PlatformSettings) -> Iterator[OperatorLogin]:
    """The operator, logged in for one command; logged out (all its tokens revoked) after."""
    with OperatorLogin.login(settings, settings.endpoints()) as login:
        yield login


@contextmanager
def operator_command(settings: PlatformSettings, command: str) -> Iterator[CommandSession]:
    """The operator logged in, with the token of ``command`` and an audit log as the operator."""
    with operator_login(settings) as login:
        client = login.command_client(command)
        with operator_audit(settings, client, login.actor) as audit:
            yield CommandSession(login.actor, client, audit)


class CommandSession:
    """What one operator command works with: who, its token's client, its audit log."""

    def __init__(self, actor: str, vault: hvac.Client, audit: AuditLog) -> None:
        self.actor, self.vault, self.audit = actor, vault, audit


def child_token(client: hvac.Client, *policies: str, ttl: str = "120s", uses: int = 0) -> str:
    """A short-lived token with only ``policies`` (e.g. ``reveal``), made by ``client``."""
    created = client.auth.token.create(
        policies=list(policies), ttl=ttl, num_uses=uses, no_default_policy=True, renewable=False
    )
    return created["auth"]["client_token"]


@contextmanager
def operator_audit(
    settings: PlatformSettings, client: hvac.Client, actor: str
) -> Iterator[AuditLog]:
    """An audit log writing as ``actor``; its Postgres login is revoked afterwards."""
    lease = client.read("database/creds/audit-writer")
    log = AuditLog(warehouse_login(settings, lease["data"]), actor=actor)
    try:
        log.emit("secret.read", {"path": "database/creds/audit-writer", "identity": actor})
        yield log
    finally:
        log.close()
        client.sys.revoke_lease(lease["lease_id"])


def warehouse_login(
    settings: PlatformSettings, creds: Mapping[str, str]
) -> Callable[[], PgConnection]:
    """Connects to the warehouse database with a dynamic login OpenBao issued (``creds``)."""
    endpoints = settings.endpoints()

    def connect() -> PgConnection:
        return psycopg2.connect(
            host=endpoints.postgres_host,
            port=endpoints.postgres_port,
            dbname=settings.warehouse_db,
            user=creds["username"],
            password=creds["password"],
            **settings.postgres_tls(),
        )

    return connect


def revoke_root_token(settings: PlatformSettings, echo: Callable[[str], None]) -> None:
    """Revoke OpenBao's root token (audited); operator commands and bootstrap go on without it.

    The operator's login is checked first, so nobody is locked out of their own stack.
    """
    folder = settings.secrets_dir
    root_file = folder / ROOT_TOKEN
    if not root_file.exists():
        marker = folder / ROOT_REVOKED
        if marker.exists():
            when, _, by = marker.read_text().strip().partition(" ")
            raise NoRootToken(f"the OpenBao root token was revoked already ({when} by {by})")
        raise NoRootToken(f"no root token at {root_file}: start the stack with `mlsec up`")
    with operator_command(settings, "revoke-root") as session:
        root = vault_client(
            settings.endpoints().vault_addr, read_secret(root_file), settings=settings
        )
        accessor = root.lookup_token()["data"]["accessor"]
        # Recorded first: a revocation the audit log cannot hold does not happen.
        session.audit.emit("openbao.root_revoked", {"accessor": accessor})
        root.auth.token.revoke_self()
        (folder / ROOT_REVOKED).write_text(f"{datetime.now(UTC).isoformat()} {session.actor}\n")
        root_file.unlink()
    echo(f"OpenBao root token revoked by {session.actor}.")
    echo(f"Operator commands log in as the operator: credential in {credential_path(settings)}.")
    echo("`mlsec up` and `mlsec bootstrap` make a root token for their run from the unseal key")
    echo("and revoke it when they end.")
