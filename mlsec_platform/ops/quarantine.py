"""Operator actions on the quarantine: list what was refused, keep a failed batch out of
curation, send a refused upload through the gateway again."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx

from mlsec_platform.catalog.datasets import dataset
from mlsec_platform.catalog.governance import PiiKind
from mlsec_platform.catalog.sources import EVENT_DOMAINS, FILE_SOURCES
from mlsec_platform.defs.resources import build_resources
from mlsec_platform.identities.tokens import issue_token
from mlsec_platform.ops.certs import ephemeral_client
from mlsec_platform.ops.operator import operator_command
from mlsec_platform.ops.refusals import NotApplicable, UnknownName
from mlsec_platform.settings import PlatformSettings
from mlsec_platform.storage.quarantine import (
    MAX_SHOWN_ROWS,
    QuarantineEntry,
    exclude_batch,
    list_quarantine,
    read_entry,
    resubmit,
)

Echo = Callable[[str], None]
#: Stands for every column when the entry names no dataset the catalog knows.
ALL_COLUMNS = "*"


class UnknownSource(UnknownName):
    """No file source or event domain of that name."""


class UnknownQuarantineId(UnknownName):
    """Nothing quarantined under that id."""


class NotResubmittable(NotApplicable):
    """Rejected events of a connector batch are kept for inspection, not sent again."""


class GatewayNotRunning(NotApplicable):
    """Nothing answers at the gateway address; the message says how to start it."""


def list_quarantined(settings: PlatformSettings, echo: Echo) -> list[QuarantineEntry]:
    """Every quarantined upload, event request or batch, one line each with its reason."""
    entries = list_quarantine(build_resources(settings)["lake_connector"])
    for e in entries:
        status = e.status if e.status is not None else "-"
        echo(f"{e.quarantine_id}  {e.stage:<9} {e.kind:<6} {e.name:<32} {status:<4} {e.reason}")
    echo(f"{len(entries)} quarantined")
    return entries


def exclude_from_curation(
    settings: PlatformSettings, source: str, batch_id: str, reason: str, echo: Echo
) -> str:
    """Keep a Raw batch that failed a quality gate out of Silver (audited); returns the marker."""
    known = [*FILE_SOURCES, *(c.source for c in EVENT_DOMAINS.values())]
    if source not in known:
        raise UnknownSource(f"unknown source {source}; known: {', '.join(known)}")
    lake = build_resources(settings)["lake_pipeline"]
    with operator_command(settings, "exclude") as session:
        record = {"reason": reason, "by": session.actor}
        key = exclude_batch(lake, source=source, batch_id=batch_id, record=record)
        session.audit.emit(
            "quality.batch_excluded", {"source": source, "batch_id": batch_id, **record}
        )
    lake.audit.close()
    echo(f"excluded {source}/{batch_id} from curation ({key}); re-run the `curated` job")
    return key


def resubmit_quarantined(
    settings: PlatformSettings, quarantine_id: str, gateway_url: str | None, echo: Echo
) -> bool:
    """Send a quarantined payload through the running gateway again; True if it was accepted."""
    lake = build_resources(settings)["lake_connector"]
    entry = next((e for e in list_quarantine(lake) if e.quarantine_id == quarantine_id), None)
    if entry is None:
        raise UnknownQuarantineId(
            f"no quarantined input {quarantine_id}; see `mlsec quarantine list`"
        )
    if entry.stage != "gateway" and entry.kind != "file":
        raise NotResubmittable("rejected events of a connector batch are kept for inspection only")
    if entry.truncated:
        raise NotResubmittable(
            f"only the first bytes of {quarantine_id} were kept (it was refused before it was "
            "read whole); send the complete input again instead"
        )
    scope = f"{'upload' if entry.kind == 'file' else 'publish'}:{entry.name}"
    url = gateway_url or f"https://127.0.0.1:{settings.gateway_port}"
    # A client certificate of its own for this one resubmission, and a token bound to it.
    with ephemeral_client(settings, f"resubmit-{quarantine_id}", 300) as (tls, certificate):
        token = _resubmit_token(settings, quarantine_id, scope, certificate)
        try:
            response = resubmit(lake, entry, url, token, verify=tls.ssl_context())
        except httpx.ConnectError:
            raise GatewayNotRunning(f"no gateway at {url}: start it with `mlsec gateway`") from None
    echo(f"{response.status_code} {response.text}")
    return response.is_success


def _resubmit_token(
    settings: PlatformSettings, quarantine_id: str, scope: str, certificate: str
) -> str:
    """A 5-minute gateway token of the operator for ``scope``, bound to ``certificate``."""
    with operator_command(settings, "issue") as session:
        token = issue_token(
            session.vault,
            subject=session.actor,
            audience="mlsec-gateway",
            ttl_seconds=300,
            certificate=certificate,
            claims={"scope": [scope]},
        )
        session.audit.emit(
            "token.issued",
            {
                "subject": session.actor,
                "audience": "mlsec-gateway",
                "scopes": [scope],
                "ttl_seconds": 300,
                "for": f"resubmit {quarantine_id}",
            },
        )
    return token


#: What `quarantine show` prints for a value of a personal column.
MASKED = "«personal»"


def show_quarantined(
    settings: PlatformSettings, quarantine_id: str, rows: int, echo: Echo
) -> QuarantineEntry:
    """One entry whole: its reason record, its payload's size, and for a quality gate's entry
    the first ``rows`` failing rows and the failure cases, personal columns masked (audited)."""
    if not 0 <= rows <= MAX_SHOWN_ROWS:
        raise NotApplicable(f"--rows {rows}: from 0 to {MAX_SHOWN_ROWS}")
    lake = build_resources(settings, identities=["connector"])["lake_connector"]
    entry = next((e for e in list_quarantine(lake) if e.quarantine_id == quarantine_id), None)
    if entry is None:
        raise UnknownQuarantineId(
            f"no quarantined input {quarantine_id}; see `mlsec quarantine list`"
        )
    contents = read_entry(lake, entry, rows)
    echo(f"{entry.quarantine_id}  {entry.stage} {entry.kind} {entry.name}")
    for key, value in contents.record.items():
        shown = value if isinstance(value, str) else json.dumps(value, default=str)
        echo(f"  {key}: {shown[:500]}")
    kept = "its first bytes only" if entry.truncated else "whole"
    echo(f"  payload: {contents.payload_bytes} bytes, kept {kept}")
    personal = _personal_columns(contents.record.get("dataset"))
    if contents.rows is not None:
        echo(f"  first {contents.rows.num_rows} failing rows (personal columns masked):")
        for row in contents.rows.to_pylist():
            echo("    " + json.dumps(_masked(row, personal), default=str, ensure_ascii=False))
    for case in contents.failure_cases[:rows]:
        if case.get("column") in personal:
            case = {**case, "failure_case": MASKED}
        echo(f"  failure: {json.dumps(case, default=str, ensure_ascii=False)}")
    lake.audit.emit(
        "quarantine.shown",
        {"quarantine_id": quarantine_id, "stage": entry.stage, "name": entry.name, "rows": rows},
    )
    lake.audit.close()
    return entry


def _personal_columns(dataset_id: str | None) -> set[str]:
    """Columns of ``dataset_id`` that hold personal data (or all of them when it is unknown:
    then every value is masked)."""
    try:
        spec = dataset(dataset_id) if dataset_id else None
    except KeyError:
        spec = None
    if spec is None:
        return {ALL_COLUMNS}
    return {
        c.name
        for c in spec.columns
        if c.pii is not PiiKind.NONE or c.tokenized or c.scrubbed or c.generalised
    }


def _masked(row: dict, personal: set[str]) -> dict:
    masked_all = ALL_COLUMNS in personal
    return {k: MASKED if masked_all or k in personal else v for k, v in row.items()}
