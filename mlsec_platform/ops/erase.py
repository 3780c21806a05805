"""`mlsec erase`: one data subject out of every place a copy of them lives, with a signed receipt.

An operator command: it logs in as the operator and runs on its `erase` token, which holds the
`operator-erase` policy and nothing else. The storage rights are read, for the length of the
command, from the identities that already remove data: `lifecycle`'s S3 key for Raw and Cold
(the only key that deletes in Raw), `pipeline`'s for Silver, Gold and features, a
warehouse-writer login for the warehouse and the online store; and the `eraser`'s, an S3 user
no workload runs as (no AppRole: only this token reads its key), for what no daily workload
needs: rewriting landing and quarantine objects and deleting from the token vault. No identity
holds the union of those rights at rest; the operator's token holds it for one erasure, and
every secret it reads is in the audit log with the operator as actor.

Order, so that a killed erasure is finished by running it again:

1. find the subject in Raw and Cold (their keys, identifiers, links) and their tokens in the
   token vault (values others share are left alone: ``storage/erasure/tokens.py``);
2. the curated tables (each then cut and its new version told to Dagster, so the broker
   serves it), the token vault (the subject's tokens forgotten, its history cut), the
   warehouse and online store, quarantine and landing objects;
3. Cold, then Raw last: while Raw still holds the subject, a re-run finds everything again.
   Every table whose log still shows an erasure commit is cut, found or not.

The receipt lists every place searched and what each lost; it names the subject only by kind
and keyed hash. The audit log gets ``erasure.started`` before anything is removed, one
``erasure.removed`` per place as it changes, and ``erasure`` (with the receipt's id and
SHA-256) at the end.

Out of its reach: events still in the NATS stream (linked ids only, no identifier; the stream
keeps them 14 days). Tokens copied out of the platform before the erasure resolve to nothing
afterwards: the vault no longer holds them.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import psycopg2
from botocore.exceptions import BotoCoreError, ClientError
from deltalake.exceptions import DeltaError

from mlsec_platform.ops.erase_steps import ErasureRun, erase_everywhere
from mlsec_platform.ops.operator import operator_command
from mlsec_platform.ops.refusals import ActionFailed, NotApplicable
from mlsec_platform.privacy.erasure.receipt import (
    FORMAT,
    ReceiptForged,
    ReceiptMalformed,
    sign_receipt,
    subject_hash,
    verify_receipt,
)
from mlsec_platform.privacy.erasure.scope import ErasureScope
from mlsec_platform.privacy.erasure.subject import parse_subject
from mlsec_platform.resources.vault import VaultError
from mlsec_platform.settings import PlatformSettings
from mlsec_platform.stack.orchestrator import apply_environment, orchestrator_environment

Echo = Callable[[str], None]
#: Runs that write what an erasure rewrites: none may be in progress. Curation runs are the
#: `curated` job's and the automation sensor's (recognised by the assets they materialize).
CONFLICTING_JOBS = ("curated", "archive_raw", "restore_raw")
CURATED_ZONES = frozenset({"silver", "gold", "features", "warehouse"})
_ACTIVE = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]


class ErasureBusy(NotApplicable):
    """A run that writes the curated zones or moves Raw is in progress; erase after it."""


class ErasureIncomplete(ActionFailed):
    """The erasure stopped part of the way (a server failed, a commit lost a race): what it
    removed stays removed, and running the same command again finishes it."""


class ReceiptNotVerified(ActionFailed):
    """The receipt does not verify: it was changed after OpenBao signed it, or is no receipt."""


@dataclass(frozen=True)
class ErasureReport:
    receipt: dict
    path: Path

    @property
    def found(self) -> bool:
        return bool(self.receipt["found"])


def receipts_dir(settings: PlatformSettings) -> Path:
    return settings.root / "erasures"


def erase_subject(
    settings: PlatformSettings,
    subject_text: str,
    reason: str,
    instance: dg.DagsterInstance,
    echo: Echo = print,
    *,
    receipt_path: Path | None = None,
) -> ErasureReport:
    """Erase the subject named ``<kind>=<value>``; returns the signed receipt and its file."""
    subject = parse_subject(subject_text)
    if not reason.strip():
        raise NotApplicable("an erasure needs a stated reason (--reason)")
    _ensure_alone(instance)
    erasure_id = str(uuid.uuid4())
    started = datetime.now(UTC).isoformat()
    with operator_command(settings, "erase") as session:
        keyed = subject_hash(session.vault, subject.kind.name, subject.value)
        who = {"kind": subject.kind.name, "keyed_hash": keyed}
        session.audit.emit(
            "erasure.started", {"id": erasure_id, "subject": who, "reason": reason.strip()}
        )
        run = ErasureRun(settings, session, instance, ErasureScope(), erasure_id, echo)
        try:
            searched, removed, found = erase_everywhere(run, subject)
        except (DeltaError, BotoCoreError, ClientError, psycopg2.Error, VaultError) as exc:
            session.audit.emit("erasure.stopped", {"id": erasure_id, "error": type(exc).__name__})
            raise ErasureIncomplete(
                f"erasure {erasure_id} stopped ({type(exc).__name__}); what it removed stays "
                "removed: run the same command again to finish it"
            ) from exc
        receipt = {
            "format": FORMAT,
            "id": erasure_id,
            "subject": who,
            "reason": reason.strip(),
            "requested_by": session.actor,
            "started_at": started,
            "finished_at": datetime.now(UTC).isoformat(),
            "found": found,
            "searched": searched,
            "removed": removed,
        }
        data = sign_receipt(session.vault, receipt)
        path = receipt_path or receipts_dir(settings) / f"{erasure_id}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        session.audit.emit(
            "erasure",
            {
                "id": erasure_id,
                "subject": who,
                "reason": reason.strip(),
                "found": found,
                "places_changed": len(removed),
                "receipt_sha256": hashlib.sha256(data).hexdigest(),
            },
        )
    echo(f"{'Erased' if found else 'Nothing found of'} {subject}: {len(removed)} place(s) changed")
    echo(f"Signed receipt: {path}")
    return ErasureReport(receipt, path)


def _ensure_alone(instance: dg.DagsterInstance) -> None:
    runs = [r.dagster_run for r in instance.get_run_records(dg.RunsFilter(statuses=_ACTIVE))]
    busy = sorted(f"{run.job_name} {run.run_id}" for run in runs if _rewrites(run))
    if busy:
        raise ErasureBusy(
            f"runs that write what an erasure rewrites are in progress ({', '.join(busy)}): "
            "let them finish, or mark them failed in Dagster if their process died"
        )


def _rewrites(run: dg.DagsterRun) -> bool:
    """The run writes a curated zone or moves Raw: it could put back what an erasure removes."""
    keys = run.asset_selection or set()
    return run.job_name in CONFLICTING_JOBS or any(k.path[0] in CURATED_ZONES for k in keys)


def verify_receipt_file(settings: PlatformSettings, path: Path, echo: Echo = print) -> dict:
    """The receipt in ``path`` if OpenBao verifies its signature; ReceiptNotVerified if not."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise NotApplicable(f"cannot read {path}: {exc.strerror}") from None
    with operator_command(settings, "erase-verify") as session:
        try:
            receipt = verify_receipt(session.vault, data)
        except (ReceiptForged, ReceiptMalformed) as exc:
            session.audit.emit("erasure.receipt_rejected", {"file": path.name, "why": str(exc)})
            raise ReceiptNotVerified(f"{path}: {exc}") from None
        session.audit.emit("erasure.receipt_verified", {"id": receipt["id"]})
    echo(
        f"Receipt {receipt['id']} verified: signed by OpenBao ({receipt['requested_by']}, "
        f"{receipt['finished_at']}, {len(receipt['removed'])} place(s) changed)"
    )
    return receipt


@contextmanager
def stack_instance(settings: PlatformSettings) -> Iterator[dg.DagsterInstance]:
    """The Dagster instance of the running stack (the erasure tells it the new versions)."""
    apply_environment(orchestrator_environment(settings))
    with dg.DagsterInstance.get() as instance:
        yield instance


def erase_in_stack(
    settings: PlatformSettings, subject: str, reason: str, echo: Echo, receipt: Path | None
) -> ErasureReport:
    with stack_instance(settings) as instance:
        return erase_subject(settings, subject, reason, instance, echo, receipt_path=receipt)
