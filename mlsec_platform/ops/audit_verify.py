"""`mlsec audit verify`: check the whole chain as the auditor identity, then anchor its head."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import closing

from mlsec_platform.audit.chain import Anchor, VerifyReport, verify_chain
from mlsec_platform.resources.leased_login import LeasedLogin
from mlsec_platform.resources.vault import VaultResource, VaultSecretNotFound
from mlsec_platform.settings import PlatformSettings

ANCHOR_PATH = "audit/anchor"


def auditor_vault(settings: PlatformSettings) -> VaultResource:
    return VaultResource.for_identity(settings, "auditor")


def read_anchor(vault: VaultResource) -> Anchor | None:
    try:
        data = vault.read_kv(ANCHOR_PATH)
    except VaultSecretNotFound:
        return None  # never anchored yet
    return Anchor(seq=int(data["seq"]), hash=data["hash"])


def verify_audit_log(settings: PlatformSettings, *, anchor: bool = True) -> VerifyReport:
    """Recompute every link; compare with the anchor in OpenBao; move the anchor forward if sound.

    The anchor lives outside PostgreSQL, so an owner who rewrites or truncates the table
    cannot also rewrite the reference it is checked against.
    """
    vault = auditor_vault(settings)
    endpoints = settings.endpoints()
    login = LeasedLogin(vault, "audit-reader", margin_seconds=30.0)
    try:
        previous = read_anchor(vault)
        with closing(
            login.connect(endpoints.postgres_host, endpoints.postgres_port, settings.warehouse_db)
        ) as conn:
            conn.set_session(readonly=True, isolation_level="REPEATABLE READ")
            report = verify_chain(conn, previous)
        if anchor and report.ok and report.events:
            vault.client().secrets.kv.v2.create_or_update_secret(
                ANCHOR_PATH,
                secret={"seq": report.head_seq, "hash": report.head_hash},
                mount_point="mlsec",
            )
        return report
    finally:
        login.revoke()
        vault.revoke()


def report_audit_log(
    settings: PlatformSettings, echo: Callable[[str], None], *, anchor: bool = True
) -> VerifyReport:
    """Verify the chain (:func:`verify_audit_log`); say whether it is intact or where it breaks."""
    report = verify_audit_log(settings, anchor=anchor)
    if report.ok:
        echo(f"audit chain intact: {report.events} events, head #{report.head_seq}")
    else:
        echo(f"audit chain BROKEN at event #{report.broken.seq}: {report.broken.reason}")
        echo(f"({report.events} events verified before it)")
    return report
