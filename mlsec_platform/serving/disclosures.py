"""What the replicas of a service share about disclosure: budgets, sightings and holds.

Kept in PostgreSQL beside the shared counters (schema ``limits``, the same ``limits_keeper``
logins), each operation one atomic function call:

    limits.disclose(budget, window, keys, rows, max_subjects, max_rows)
        counts the keys not yet disclosed in the budget's current window and the rows, and
        records them only if both stay within the caps (else nothing is counted)
    limits.sight(watches, subjects, items, windows)
        records what a subject was seen asking for; per watch, the distinct items within its
        window (the exfiltration detectors' evidence)
    limits.hold(subject, action, detector, seconds)   a detector's action on a subject
    limits.holds_now()                                the holds in force
    limits.resume(subject)                            an operator lifts a subject's hold

Keys and items arrive as keyed hashes: the tables hold no data subject's key.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from mlsec_platform.serving.counters import SharedCounters

DISCLOSURES_DDL = """
CREATE TABLE IF NOT EXISTS limits.disclosure (
    budget       text NOT NULL,
    window_start timestamptz NOT NULL,
    subjects     bigint NOT NULL,
    rows         bigint NOT NULL,
    PRIMARY KEY (budget, window_start)
);
CREATE TABLE IF NOT EXISTS limits.disclosed (
    budget       text NOT NULL,
    window_start timestamptz NOT NULL,
    key          text NOT NULL,
    PRIMARY KEY (budget, window_start, key)
);
CREATE TABLE IF NOT EXISTS limits.sightings (
    watch   text NOT NULL,
    subject text NOT NULL,
    item    text NOT NULL,
    seen_at timestamptz NOT NULL,
    PRIMARY KEY (watch, item)
);
CREATE INDEX IF NOT EXISTS sightings_subject ON limits.sightings (subject);
CREATE TABLE IF NOT EXISTS limits.holds (
    subject  text PRIMARY KEY,
    action   text NOT NULL,
    detector text NOT NULL,
    since    timestamptz NOT NULL,
    until    timestamptz
);

CREATE OR REPLACE FUNCTION limits.disclose(
    p_budget text, p_window float8, p_keys text[], p_rows bigint,
    p_max_subjects bigint, p_max_rows bigint,
    OUT allowed boolean, OUT subjects bigint, OUT rows_ bigint, OUT resets_in float8
) LANGUAGE plpgsql SET search_path = pg_catalog, limits AS $$
DECLARE
    now_   timestamptz := clock_timestamp();
    start_ timestamptz := to_timestamp(floor(extract(epoch FROM now_) / p_window) * p_window);
    fresh  bigint;
BEGIN
    resets_in := extract(epoch FROM start_ - now_) + p_window;
    INSERT INTO disclosure VALUES (p_budget, start_, 0, 0) ON CONFLICT DO NOTHING;
    IF FOUND THEN  -- the window's first disclosure: the keys of earlier windows are spent
        DELETE FROM disclosed WHERE budget = p_budget AND window_start < start_;
        DELETE FROM disclosure WHERE budget = p_budget AND window_start < start_;
    END IF;
    SELECT d.subjects, d.rows INTO subjects, rows_ FROM disclosure d
        WHERE d.budget = p_budget AND d.window_start = start_ FOR UPDATE;
    SELECT count(DISTINCT k) INTO fresh FROM unnest(p_keys) AS k
        WHERE NOT EXISTS (SELECT 1 FROM disclosed x
                          WHERE x.budget = p_budget AND x.window_start = start_ AND x.key = k);
    allowed := subjects + fresh <= p_max_subjects AND rows_ + p_rows <= p_max_rows;
    IF NOT allowed OR (fresh = 0 AND p_rows = 0) THEN
        RETURN;  -- a refusal counts nothing
    END IF;
    INSERT INTO disclosed SELECT p_budget, start_, k FROM unnest(p_keys) AS k
        ON CONFLICT DO NOTHING;
    subjects := subjects + fresh;
    rows_ := rows_ + p_rows;
    UPDATE disclosure d SET subjects = disclose.subjects, rows = rows_
        WHERE d.budget = p_budget AND d.window_start = start_;
END $$;

DROP FUNCTION IF EXISTS limits.sight(text[], text[], text[], float8[]);
CREATE FUNCTION limits.sight(
    p_watches text[], p_subjects text[], p_items text[], p_windows float8[]
) RETURNS TABLE (w_watch text, w_seen bigint)
LANGUAGE plpgsql SET search_path = pg_catalog, limits AS $$
DECLARE
    now_ timestamptz := clock_timestamp();
    w    record;
BEGIN
    INSERT INTO sightings
        SELECT DISTINCT ON (wa, it) wa, su, it, now_
        FROM unnest(p_watches, p_subjects, p_items) AS t(wa, su, it)
        ON CONFLICT ON CONSTRAINT sightings_pkey DO UPDATE SET seen_at = excluded.seen_at;
    FOR w IN SELECT DISTINCT wa, wi FROM unnest(p_watches, p_windows) AS t(wa, wi) LOOP
        DELETE FROM sightings s
            WHERE s.watch = w.wa AND s.seen_at < now_ - make_interval(secs => w.wi);
    END LOOP;
    RETURN QUERY SELECT s.watch, count(*) FROM sightings s
        WHERE s.watch = ANY(p_watches) GROUP BY s.watch;
END $$;

CREATE OR REPLACE FUNCTION limits.hold(
    p_subject text, p_action text, p_detector text, p_seconds float8
) RETURNS timestamptz LANGUAGE plpgsql SET search_path = pg_catalog, limits AS $$
DECLARE
    now_ timestamptz := clock_timestamp();
    placed timestamptz;
BEGIN
    -- Only an expired hold is replaced: when two replicas cross a threshold together, the
    -- second finds the first's hold in force and gets NULL (it neither alerts nor re-holds).
    INSERT INTO holds AS h VALUES (p_subject, p_action, p_detector, now_,
                                   CASE WHEN p_seconds IS NULL THEN NULL
                                        ELSE now_ + make_interval(secs => p_seconds) END)
        ON CONFLICT (subject) DO UPDATE SET action = excluded.action,
            detector = excluded.detector, since = excluded.since, until = excluded.until
        WHERE h.until IS NOT NULL AND h.until <= now_
        RETURNING h.since INTO placed;
    RETURN placed;
END $$;

CREATE OR REPLACE FUNCTION limits.holds_now()
RETURNS TABLE (subject text, action text, detector text, since float8, until float8)
LANGUAGE sql SET search_path = pg_catalog, limits AS $$
    SELECT h.subject, h.action, h.detector, extract(epoch FROM h.since),
           extract(epoch FROM h.until)
    FROM holds h WHERE h.until IS NULL OR h.until > clock_timestamp()
$$;

CREATE OR REPLACE FUNCTION limits.resume(p_subject text)
RETURNS boolean LANGUAGE plpgsql SET search_path = pg_catalog, limits AS $$
BEGIN
    DELETE FROM sightings WHERE subject = p_subject;  -- what led to the hold is spent
    DELETE FROM holds WHERE subject = p_subject;
    RETURN FOUND;
END $$;

REVOKE ALL ON ALL TABLES IN SCHEMA limits FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA limits FROM PUBLIC;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA limits TO limits_keeper;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA limits TO limits_keeper;
"""


@dataclass(frozen=True, slots=True)
class Disclosed:
    """A budget's state in its current window after a disclosure was asked for."""

    allowed: bool
    subjects: int
    rows: int
    resets_in: float


@dataclass(frozen=True, slots=True)
class Hold:
    """A detector's action in force on a subject; ``until`` None: until an operator resumes it.
    Times are seconds since the epoch, on the database's clock."""

    subject: str
    action: str
    detector: str
    since: float
    until: float | None


class SharedDisclosures(SharedCounters):
    """The ``limits`` disclosure functions over a connection of their own (see the module)."""

    def disclose(
        self,
        budget: str,
        window_seconds: float,
        keys: Sequence[str],
        rows: int,
        max_subjects: int,
        max_rows: int,
    ) -> Disclosed:
        allowed, subjects, rows_, resets_in = self._call(
            "SELECT * FROM limits.disclose(%s, %s, %s::text[], %s, %s, %s)",
            (budget, window_seconds, list(keys), rows, max_subjects, max_rows),
        )
        return Disclosed(bool(allowed), int(subjects), int(rows_), float(resets_in))

    def sight(
        self,
        watches: Sequence[str],
        subjects: Sequence[str],
        items: Sequence[str],
        windows: Sequence[float],
    ) -> dict[str, int]:
        """Record the sightings (one per index); the distinct items of each watch now."""
        (counts,) = self._call(
            "SELECT coalesce(json_object_agg(w_watch, w_seen), '{}') "
            "FROM limits.sight(%s::text[], %s::text[], %s::text[], %s::float8[])",
            (list(watches), list(subjects), list(items), list(windows)),
        )
        return {watch: int(seen) for watch, seen in counts.items()}

    def hold(
        self, subject: str, action: str, detector: str, seconds: float | None
    ) -> datetime | None:
        """When the hold was placed; None when one is in force already (another replica's)."""
        (since,) = self._call(
            "SELECT limits.hold(%s, %s, %s, %s)", (subject, action, detector, seconds)
        )
        return since

    def holds(self) -> list[Hold]:
        (rows,) = self._call("SELECT coalesce(json_agg(h), '[]') FROM limits.holds_now() h", ())
        return [Hold(**row) for row in rows]

    def resume(self, subject: str) -> bool:
        (lifted,) = self._call("SELECT limits.resume(%s)", (subject,))
        return bool(lifted)


class LocalDisclosures:
    """The same rules in one process's memory, for an app without a shared store (the app's
    tests without servers); windows start when first used, not on the epoch."""

    def __init__(self) -> None:
        self._budgets: dict[str, tuple[float, set[str], int]] = {}
        self._sightings: dict[str, dict[str, float]] = {}
        self._holds: dict[str, Hold] = {}
        self._lock = threading.Lock()  # request threads and the watch's keeper share it
        self.holder = "local"

    def disclose(self, budget: str, window_seconds: float, keys: Sequence[str], rows: int,
                 max_subjects: int, max_rows: int) -> Disclosed:  # fmt: skip
        now = time.time()
        with self._lock:
            start, seen, used = self._budgets.get(budget, (now, set(), 0))
            if start + window_seconds <= now:
                start, seen, used = now, set(), 0
            fresh = set(keys) - seen
            allowed = len(seen) + len(fresh) <= max_subjects and used + rows <= max_rows
            if allowed:
                seen, used = seen | fresh, used + rows
                self._budgets[budget] = (start, seen, used)
        return Disclosed(allowed, len(seen), used, start + window_seconds - now)

    def sight(self, watches: Sequence[str], subjects: Sequence[str], items: Sequence[str],
              windows: Sequence[float]) -> dict[str, int]:  # fmt: skip
        now = time.time()
        with self._lock:
            for watch, item, window in zip(watches, items, windows, strict=True):
                seen = self._sightings.setdefault(watch, {})
                seen[item] = now
                for old in [i for i, at in seen.items() if at < now - window]:
                    del seen[old]
            return {watch: len(self._sightings[watch]) for watch in watches}

    def hold(
        self, subject: str, action: str, detector: str, seconds: float | None
    ) -> datetime | None:
        now = time.time()
        with self._lock:
            held = self._holds.get(subject)
            if held is not None and (held.until is None or held.until > now):
                return None
            until = None if seconds is None else now + seconds
            self._holds[subject] = Hold(subject, action, detector, now, until)
        return datetime.fromtimestamp(now, UTC)

    def holds(self) -> list[Hold]:
        now = time.time()
        with self._lock:
            return [h for h in self._holds.values() if h.until is None or h.until > now]

    def resume(self, subject: str) -> bool:
        with self._lock:
            return self._holds.pop(subject, None) is not None

    def close(self) -> None:
        return None
