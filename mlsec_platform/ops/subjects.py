"""Operator actions on broker subjects that exfiltration detection holds: lift one (`mlsec
subject resume`), in every broker replica at once (they read the holds from the shared
counters within a second). `mlsec audit search --type broker.exfiltration.suspected` finds
the holds and why they were put."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from mlsec_platform.ops.operator import CommandSession, operator_command, warehouse_login
from mlsec_platform.ops.refusals import NotApplicable
from mlsec_platform.serving.disclosures import SharedDisclosures
from mlsec_platform.settings import PlatformSettings

Echo = Callable[[str], None]


class NotHeld(NotApplicable):
    """No hold is in force on that subject."""


@contextmanager
def _holds(settings: PlatformSettings) -> Iterator[tuple[CommandSession, SharedDisclosures]]:
    """The shared holds through a short limits-keeper login of the operator's command."""
    with operator_command(settings, "subjects") as session:
        lease = session.vault.read("database/creds/limits-keeper")
        store = SharedDisclosures(warehouse_login(settings, lease["data"]), holder="operator")
        try:
            yield session, store
        finally:
            store.close()
            session.vault.sys.revoke_lease(lease["lease_id"])


def resume_subject(settings: PlatformSettings, subject: str, reason: str, echo: Echo) -> None:
    """Lift the hold on ``subject`` (audited with the operator's reason); its detectors' counts
    start again from nothing."""
    with _holds(settings) as (session, store):
        held = {h.subject: h for h in store.holds()}.get(subject)
        if held is None or not store.resume(subject):
            raise NotHeld(f"no hold is in force on subject {subject!r}")
        session.audit.emit(
            "broker.subject.resumed",
            {
                "subject": subject,
                "reason": reason,
                "action": held.action,
                "detector": held.detector,
                "operator": session.actor,
            },
        )
    echo(f"resumed {subject} (was: {held.action} after {held.detector})")
