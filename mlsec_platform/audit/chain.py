"""Writing audit events and verifying the hash chain they form."""

from __future__ import annotations

import hashlib
import json
import re
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import psycopg2
from psycopg2.extensions import connection as PgConnection
from psycopg2.extras import Json

from mlsec_platform.errors import MlsecError

GENESIS_HASH = "0" * 64

#: Payload keys that would suggest a secret is about to be written to the log.
_SECRET_KEY = re.compile(r"(secret|password|passwd|token|private)", re.IGNORECASE)


class AuditWriteError(MlsecError, RuntimeError):
    """An audit event could not be recorded; the action it describes must not go ahead."""


def canonical_text(
    seq: int,
    event_id: str,
    occurred_at: str,
    event_type: str,
    actor: str,
    run_id: str,
    payload: str,
    prev_hash: str,
) -> str:
    """The text each link hashes; mirrors ``audit.canonical`` in ``schema.py``."""
    return "|".join(
        (str(seq), event_id, occurred_at, event_type, actor, run_id, payload, prev_hash)
    )


def link_hash(canonical: str) -> str:
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def check_payload(payload: Mapping[str, Any]) -> None:
    for key, value in payload.items():
        if _SECRET_KEY.search(key):
            raise ValueError(f"audit payload key {key!r} looks like a secret; record a reference")
        if isinstance(value, Mapping):
            check_payload(value)


class AuditLog:
    """Appends events through a connection whose role holds INSERT on ``audit.events`` only."""

    def __init__(self, connect: Callable[[], PgConnection], actor: str) -> None:
        self._connect = connect
        self._actor = actor
        self._conn: PgConnection | None = None
        self._lock = threading.Lock()

    def emit(
        self, event_type: str, payload: Mapping[str, Any], *, run_id: str | None = None
    ) -> str:
        """Record one event and return its id. Raises AuditWriteError if it was not recorded."""
        check_payload(payload)
        event_id = str(uuid.uuid4())
        row = (
            event_id,
            storable_text(event_type),
            storable_text(self._actor),
            None if run_id is None else storable_text(run_id),
            Json(dict(payload), dumps=payload_json),
        )
        with self._lock:
            for attempt in (1, 2):
                try:
                    conn = self._connection()
                    with conn.cursor() as cur:
                        # seq, occurred_at and the hashes are set by the chain trigger.
                        cur.execute(
                            "INSERT INTO audit.events"
                            " (event_id, event_type, actor, run_id, payload)"
                            " VALUES (%s, %s, %s, %s, %s)",
                            row,
                        )
                    return event_id
                except psycopg2.OperationalError as exc:
                    # A dropped connection (e.g. credentials rotated): reconnect once.
                    self.close()
                    if attempt == 2:
                        raise AuditWriteError(
                            f"audit log unreachable: {exc.pgerror or exc}"
                        ) from None
                except psycopg2.Error as exc:
                    self.close()
                    raise AuditWriteError(f"audit event refused: {exc.pgerror or exc}") from None
        raise AssertionError("unreachable")

    def _connection(self) -> PgConnection:
        if self._conn is None or self._conn.closed:
            self._conn = self._connect()
            self._conn.autocommit = True
        return self._conn

    def close(self) -> None:
        if self._conn is not None and not self._conn.closed:
            self._conn.close()
        self._conn = None


def payload_json(value: Any) -> str:
    """An event payload as JSON text (Postgres stores it as jsonb, which fixes its form).

    Whatever a caller sent ends up in some event (a path, a JSON key named by a validation
    error, a header), and jsonb refuses two escapes JSON allows: ``\\u0000`` and a lone
    surrogate. One such event would make its INSERT fail, so both are written as the six
    characters of their escape instead (``\\u0000`` stored as text): kept, never dropped, and
    what is stored is what the chain hashes. Keys and values alike; the scan costs one
    substring search unless the text holds a ``\\u0000`` or ``\\ud...`` escape at all."""
    text = json.dumps(value, default=str, sort_keys=True)  # ASCII: every such code is escaped
    if "\\u0000" in text or "\\ud" in text:
        text = _UNSTORABLE_ESCAPE.sub(_escape_unstorable, text)
    return text


#: A run of backslashes, then an escape jsonb may refuse: NUL, a surrogate pair (kept) or a
#: lone surrogate. An even run is literal backslashes, not an escape.
_UNSTORABLE_ESCAPE = re.compile(
    r"(\\+)u(0000|d[89ab][0-9a-f]{2}\\ud[c-f][0-9a-f]{2}|d[89a-f][0-9a-f]{2})"
)


def _escape_unstorable(match: re.Match[str]) -> str:
    slashes, code = match.group(1), match.group(2)
    if len(slashes) % 2 == 0 or len(code) > 4:  # literal text, or a valid pair
        return match.group(0)
    return f"{slashes}\\u{code}"  # one more backslash: the escape itself becomes text


def storable_text(value: str) -> str:
    """``value`` as a text column stores it: Postgres text holds no NUL and UTF-8 no lone
    surrogate, so each is written as its escape (``\\u0000``, ``\\ud800``), as in payloads."""
    if "\x00" in value:
        value = value.replace("\x00", "\\u0000")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        value = value.encode("utf-8", "backslashreplace").decode("utf-8")
    return value


@dataclass(frozen=True)
class BrokenLink:
    seq: int
    reason: str


@dataclass(frozen=True)
class VerifyReport:
    events: int
    head_seq: int
    head_hash: str
    broken: BrokenLink | None

    @property
    def ok(self) -> bool:
        return self.broken is None


@dataclass(frozen=True)
class Anchor:
    """A (seq, hash) pair of the chain recorded outside Postgres."""

    seq: int
    hash: str


_SELECT_CHAIN = """
SELECT seq, event_id::text,
       to_char(occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
       event_type, actor, coalesce(run_id, ''), payload::text, prev_hash, hash
FROM audit.events ORDER BY seq
"""


def verify_chain(conn: PgConnection, anchor: Anchor | None = None) -> VerifyReport:
    """Recompute every link in order and report the first one that does not hold."""
    expected_seq, prev_hash, count = 1, GENESIS_HASH, 0
    anchor_seen = anchor is None or anchor.seq == 0
    broken: BrokenLink | None = None
    with conn.cursor(name="audit_verify") as cur:
        cur.itersize = 5000
        cur.execute(_SELECT_CHAIN)
        for (
            seq,
            event_id,
            occurred_at,
            event_type,
            actor,
            run_id,
            payload,
            stored_prev,
            stored,
        ) in cur:
            if seq != expected_seq:
                broken = BrokenLink(expected_seq, f"event {expected_seq} is missing (deleted)")
                break
            if stored_prev != prev_hash:
                broken = BrokenLink(seq, "prev_hash does not match the hash of the event before")
                break
            recomputed = link_hash(
                canonical_text(
                    seq, event_id, occurred_at, event_type, actor, run_id, payload, stored_prev
                )
            )
            if recomputed != stored:
                broken = BrokenLink(seq, "content does not match its hash (altered)")
                break
            if anchor is not None and seq == anchor.seq:
                if stored != anchor.hash:
                    broken = BrokenLink(seq, "differs from the anchor kept in OpenBao (rewritten)")
                    break
                anchor_seen = True
            prev_hash, expected_seq, count = stored, expected_seq + 1, count + 1
    if broken is None and not anchor_seen:
        broken = BrokenLink(
            anchor.seq, f"chain ends at {expected_seq - 1}, before the anchored event (truncated)"
        )
    return VerifyReport(events=count, head_seq=expected_seq - 1, head_hash=prev_hash, broken=broken)
