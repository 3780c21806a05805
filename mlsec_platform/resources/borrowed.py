"""Resources on a token and an audit log someone else holds: an operator command's.

A workload logs in with its own AppRole (``VaultResource``). An operator command that must
act on a zone with a workload's storage rights (`mlsec erase` rewrites Raw with the
`lifecycle` identity's S3 key) instead reads that key with its own short-lived token, which
its command policy lets read it, and records every secret read in its own audit log, with the
operator as actor. These two resources let the lake, warehouse and audit resources run on
that token and that log unchanged; the token belongs to the operator's login, which revokes
it.
"""

from __future__ import annotations

import hvac
from pydantic import PrivateAttr

from mlsec_platform.audit.chain import AuditLog
from mlsec_platform.resources.audit import AuditResource
from mlsec_platform.resources.vault import VaultAccessDenied, VaultResource


class BorrowedVault(VaultResource):
    """OpenBao on a token obtained elsewhere, reading a workload's secrets (``identity``:
    whose keys, e.g. ``mlsec/s3/lifecycle``) as far as that token's policy allows."""

    _borrowed: hvac.Client | None = PrivateAttr(default=None)

    @classmethod
    def on(cls, client: hvac.Client, identity: str) -> BorrowedVault:
        vault = cls(addr=client.url, identity=identity, credentials_dir="")
        vault._borrowed = client
        return vault

    def client(self) -> hvac.Client:
        if self._borrowed is None:
            raise VaultAccessDenied(f"the borrowed token for '{self.identity}' was given back")
        return self._borrowed

    def revoke(self) -> None:
        """Give the token back to its owner (who revokes it); this resource stops using it."""
        self._borrowed = None


class LoggedAudit(AuditResource):
    """The audit resource writing to an audit log already open (with its own actor)."""

    _given: AuditLog | None = PrivateAttr(default=None)

    @classmethod
    def on(cls, log: AuditLog, vault: VaultResource) -> LoggedAudit:
        audit = cls(vault=vault, host="-", port=0)
        audit._given = log
        return audit

    def _audit_log(self) -> AuditLog:
        assert self._given is not None
        return self._given

    def close(self) -> None:
        """The log is its owner's to close."""
