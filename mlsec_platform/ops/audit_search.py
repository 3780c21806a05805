"""`mlsec audit search`: find audit events by subject, dataset, type, outcome and time.

Read as the ``auditor`` identity over a short-lived ``audit-reader`` login, in a read-only
transaction, as `mlsec audit verify` reads (OpenBao's own audit device records the login).
Filters are bound parameters, never text pasted into SQL. Events carry who, what and how it
ended, never a secret or a value, so they print as they are.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from mlsec_platform.ops.refusals import NotApplicable
from mlsec_platform.resources.leased_login import LeasedLogin
from mlsec_platform.resources.vault import VaultResource
from mlsec_platform.settings import PlatformSettings

Echo = Callable[[str], None]

#: ``90s``, ``30m``, ``12h``, ``7d``: that long before now.
_AGO = re.compile(r"^(\d+)([smhd])$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}
MAX_LIMIT = 10_000

#: Where an event names the dataset it concerns: the broker's reads, the pipeline's writes.
_DATASET = "coalesce(payload->>'dataset', payload->>'asset_key', payload->>'name')"

_QUERY = f"""
SELECT seq, occurred_at, event_type, actor, run_id, payload
  FROM audit.events
 WHERE (%(subject)s::text IS NULL OR payload->>'subject' = %(subject)s)
   AND (%(dataset)s::text IS NULL OR {_DATASET} = %(dataset)s)
   AND (%(event_type)s::text IS NULL OR event_type = %(event_type)s)
   AND (%(outcome)s::text IS NULL OR payload->>'outcome' = %(outcome)s)
   AND (%(since)s::timestamptz IS NULL OR occurred_at >= %(since)s)
   AND (%(until)s::timestamptz IS NULL OR occurred_at < %(until)s)
 ORDER BY seq DESC
 LIMIT %(limit)s
"""


class SearchRefused(NotApplicable):
    """A filter that makes no search (a time that is not one, a limit out of range)."""


def parse_time(text: str | None, now: datetime | None = None) -> datetime | None:
    """``7d``/``12h``/``30m``/``90s`` before now, or an ISO 8601 time (UTC when it names no
    zone)."""
    if text is None:
        return None
    now = now or datetime.now(UTC)
    if match := _AGO.match(text.strip()):
        return now - timedelta(seconds=int(match[1]) * _UNIT[match[2]])
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise SearchRefused(
            f"{text!r} is not a time: give an ISO 8601 time (2026-12-01T08:00) or an age "
            "(90s, 30m, 12h, 7d)"
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


@dataclass(frozen=True)
class AuditFilter:
    subject: str | None = None
    dataset: str | None = None
    event_type: str | None = None
    outcome: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int = 50

    def parameters(self) -> dict:
        if not 1 <= self.limit <= MAX_LIMIT:
            raise SearchRefused(f"--limit {self.limit}: from 1 to {MAX_LIMIT}")
        return {
            "subject": self.subject,
            "dataset": self.dataset,
            "event_type": self.event_type,
            "outcome": self.outcome,
            "since": self.since,
            "until": self.until,
            "limit": self.limit,
        }


@dataclass(frozen=True)
class AuditEvent:
    seq: int
    occurred_at: datetime
    event_type: str
    actor: str
    run_id: str | None
    payload: dict

    def line(self) -> str:
        p = self.payload
        dataset = p.get("dataset") or p.get("asset_key") or p.get("name") or "-"
        status = p.get("status", "-")
        return (
            f"#{self.seq:<7} {self.occurred_at:%Y-%m-%d %H:%M:%S} {self.event_type:<24} "
            f"{self.actor:<12} {p.get('subject') or '-':<16} {dataset:<28} "
            f"{p.get('outcome') or '-':<8} {status}"
        )

    def as_json(self) -> str:
        return json.dumps(
            {
                "seq": self.seq,
                "occurred_at": self.occurred_at.isoformat(),
                "event_type": self.event_type,
                "actor": self.actor,
                "run_id": self.run_id,
                "payload": self.payload,
            },
            sort_keys=True,
        )


def search_audit_log(settings: PlatformSettings, where: AuditFilter) -> list[AuditEvent]:
    """The events matching ``where``, newest first."""
    parameters = where.parameters()
    vault = VaultResource.for_identity(settings, "auditor")
    endpoints = settings.endpoints()
    login = LeasedLogin(vault, "audit-reader", margin_seconds=30.0)
    try:
        with closing(
            login.connect(endpoints.postgres_host, endpoints.postgres_port, settings.warehouse_db)
        ) as conn:
            conn.set_session(readonly=True)
            with conn.cursor() as cur:
                cur.execute(_QUERY, parameters)
                return [AuditEvent(*row) for row in cur.fetchall()]
    finally:
        login.revoke()
        vault.revoke()


def report_search(
    settings: PlatformSettings, where: AuditFilter, echo: Echo, *, as_json: bool = False
) -> list[AuditEvent]:
    """Print the matching events, one line each (or one JSON object each), newest first."""
    events = search_audit_log(settings, where)
    for event in events:
        echo(event.as_json() if as_json else event.line())
    if not as_json:
        more = (
            " (the limit: narrow the search or raise --limit)" if len(events) == where.limit else ""
        )
        echo(f"{len(events)} events{more}")
    return events
