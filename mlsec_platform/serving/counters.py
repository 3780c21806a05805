"""Counters that the replicas of a service share, kept in PostgreSQL (schema ``limits``).

Rate limits, daily quotas and concurrency caps only mean something if every replica counts
against the same numbers, and a daily quota must outlive a restart. The stack already runs
PostgreSQL, so the counters live there, each operation one atomic function call (one round
trip), with the server's clock as the one clock all replicas share:

    limits.take(keys, rates, caps, wants)        token buckets: grants the same number of tokens
                                                 (up to ``wants``) from every bucket, or none
    limits.reserve_rows(project, cap, want)      today's (UTC) rows of a project's quota
    limits.return_rows(project, day, rows)       gives unused reserved rows back
    limits.acquire_slot(subject, holder, cap, ttl)  one of a subject's in-flight slots, and
                                                 how many are left (-1: none was free)
    limits.release_slots(subject, holder, n)
    limits.renew_slots(holder, ttl)              a holder's slots expire unless renewed, so a
                                                 replica that dies frees them

Callers lease in batches (tokens, rows, slots) so that the accepted path of a request seldom
needs a round trip at all; see ``broker_api.limits``. Writers are dynamic logins of the
``limits_keeper`` group, which may use these tables and functions and nothing else.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from datetime import date

import psycopg2
from psycopg2.extensions import connection as PgConnection

from mlsec_platform.errors import MlsecError

COUNTERS_DDL = """
CREATE TABLE IF NOT EXISTS limits.buckets (
    key    text PRIMARY KEY,
    tokens double precision NOT NULL,
    stamp  timestamptz NOT NULL
);
CREATE TABLE IF NOT EXISTS limits.quota (
    project text NOT NULL,
    day     date NOT NULL,
    used    bigint NOT NULL,
    PRIMARY KEY (project, day)
);
CREATE TABLE IF NOT EXISTS limits.slots (
    subject    text NOT NULL,
    holder     text NOT NULL,
    held       integer NOT NULL,
    expires_at timestamptz NOT NULL,
    PRIMARY KEY (subject, holder)
);

CREATE OR REPLACE FUNCTION limits.take(
    keys text[], rates float8[], caps float8[], wants float8[], OUT granted float8, OUT wait float8
) LANGUAGE plpgsql SET search_path = pg_catalog, limits AS $$
DECLARE
    now_  timestamptz := clock_timestamp();
    i     int;
    level float8[] := '{}';
    b     record;
BEGIN
    -- A new bucket starts full; rows are locked in key order so callers never deadlock.
    INSERT INTO buckets (key, tokens, stamp)
        SELECT k, c, now_ FROM unnest(keys, caps) AS t(k, c) ORDER BY k
        ON CONFLICT (key) DO NOTHING;
    PERFORM 1 FROM buckets WHERE key = ANY(keys) ORDER BY key FOR UPDATE;
    granted := 'Infinity';
    wait := 0;
    FOR i IN 1 .. array_length(keys, 1) LOOP
        SELECT * INTO b FROM buckets WHERE key = keys[i];
        level[i] := least(caps[i],
                          b.tokens + greatest(extract(epoch FROM now_ - b.stamp), 0) * rates[i]);
        granted := least(granted, wants[i], floor(level[i]));
        IF level[i] < 1 THEN
            wait := greatest(wait,
                             CASE WHEN rates[i] > 0 THEN (1 - level[i]) / rates[i] ELSE 3600 END);
        END IF;
    END LOOP;
    IF granted < 1 THEN
        granted := 0;  -- a refusal takes nothing from any bucket
    ELSE
        wait := 0;
    END IF;
    FOR i IN 1 .. array_length(keys, 1) LOOP
        UPDATE buckets SET tokens = level[i] - granted, stamp = now_ WHERE key = keys[i];
    END LOOP;
END $$;

CREATE OR REPLACE FUNCTION limits.reserve_rows(
    p_project text, p_cap bigint, p_want bigint, OUT day date, OUT granted bigint
) LANGUAGE plpgsql SET search_path = pg_catalog, limits AS $$
DECLARE
    spent bigint;
BEGIN
    day := (clock_timestamp() AT TIME ZONE 'UTC')::date;
    INSERT INTO quota VALUES (p_project, day, 0) ON CONFLICT ON CONSTRAINT quota_pkey DO NOTHING;
    SELECT q.used INTO spent FROM quota q
        WHERE q.project = p_project AND q.day = reserve_rows.day FOR UPDATE;
    granted := greatest(least(p_want, p_cap - spent), 0);
    UPDATE quota q SET used = q.used + granted
        WHERE q.project = p_project AND q.day = reserve_rows.day;
END $$;

CREATE OR REPLACE FUNCTION limits.return_rows(p_project text, p_day date, p_rows bigint)
RETURNS void LANGUAGE sql SET search_path = pg_catalog, limits AS $$
    UPDATE quota SET used = greatest(used - p_rows, 0) WHERE project = p_project AND day = p_day
$$;

DROP FUNCTION IF EXISTS limits.acquire_slot(text, text, int, float8);
CREATE FUNCTION limits.acquire_slot(
    p_subject text, p_holder text, p_cap int, p_ttl float8
) RETURNS integer LANGUAGE plpgsql SET search_path = pg_catalog, limits AS $$
DECLARE
    now_  timestamptz := clock_timestamp();
    taken bigint;
BEGIN
    -- One decision at a time per subject, so two replicas never both take the last slot.
    PERFORM pg_advisory_xact_lock(hashtext('limits.slots'), hashtext(p_subject));
    SELECT coalesce(sum(held), 0) INTO taken FROM slots
        WHERE subject = p_subject AND expires_at > now_;
    IF taken >= p_cap THEN
        RETURN -1;
    END IF;
    INSERT INTO slots AS s VALUES (p_subject, p_holder, 1, now_ + make_interval(secs => p_ttl))
        ON CONFLICT ON CONSTRAINT slots_pkey DO UPDATE SET
            held = CASE WHEN s.expires_at > now_ THEN s.held + 1 ELSE 1 END,
            expires_at = excluded.expires_at;
    RETURN p_cap - taken - 1;
END $$;

CREATE OR REPLACE FUNCTION limits.release_slots(p_subject text, p_holder text, p_n int)
RETURNS void LANGUAGE plpgsql SET search_path = pg_catalog, limits AS $$
BEGIN
    UPDATE slots SET held = held - p_n WHERE subject = p_subject AND holder = p_holder;
    DELETE FROM slots WHERE subject = p_subject AND holder = p_holder AND held <= 0;
END $$;

CREATE OR REPLACE FUNCTION limits.renew_slots(p_holder text, p_ttl float8)
RETURNS void LANGUAGE sql SET search_path = pg_catalog, limits AS $$
    DELETE FROM slots WHERE expires_at < clock_timestamp() - interval '1 hour';
    UPDATE slots SET expires_at = clock_timestamp() + make_interval(secs => p_ttl)
        WHERE holder = p_holder;
$$;

REVOKE ALL ON ALL TABLES IN SCHEMA limits FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA limits FROM PUBLIC;
GRANT USAGE ON SCHEMA limits TO limits_keeper;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA limits TO limits_keeper;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA limits TO limits_keeper;
"""


class CountersUnavailable(MlsecError, RuntimeError):
    """The shared counters cannot be read or written: limits cannot be enforced, so the
    request is not served (fail closed)."""

    http_status = 503


class SharedCounters:
    """The ``limits`` functions over one autocommit connection, one call at a time.

    ``connect`` opens a connection as a ``limits_keeper`` login; it is called again after a
    failure and whenever ``login_id`` (the login's lease) changes. ``holder`` names this
    replica's slots (unique per process)."""

    def __init__(
        self,
        connect: Callable[[], PgConnection],
        *,
        login_id: Callable[[], str] = lambda: "",
        holder: str,
    ) -> None:
        self._connect = connect
        self._login_id = login_id
        self.holder = holder
        self._conn: PgConnection | None = None
        self._conn_login = ""
        self._lock = threading.Lock()

    def _call(self, sql: str, params: Sequence[object]) -> tuple:
        with self._lock:
            try:
                login = self._login_id()
                if self._conn is None or self._conn.closed or self._conn_login != login:
                    self._close()
                    self._conn = self._connect()
                    self._conn.autocommit = True
                    self._conn_login = login
                with self._conn.cursor() as cur:
                    cur.execute(sql, params)
                    return cur.fetchone() if cur.description else ()
            except (psycopg2.Error, OSError, MlsecError) as exc:  # MlsecError: no login
                self._close()  # a fresh connection (and login) for the next call
                raise CountersUnavailable(f"shared limits unavailable: {exc}".strip()) from None

    def take(
        self,
        keys: Sequence[str],
        rates: Sequence[float],
        caps: Sequence[float],
        wants: Sequence[int],
    ) -> tuple[int, float]:
        """Tokens granted from every bucket ``keys[i]`` (refilled at ``rates[i]`` per second
        up to ``caps[i]``): the same number from each, at most ``wants[i]``, or none; and when
        none, the seconds until one would be there."""
        granted, wait = self._call(
            "SELECT granted, wait FROM limits.take(%s::text[], %s::float8[], %s::float8[], "
            "%s::float8[])",
            (list(keys), list(rates), list(caps), list(wants)),
        )
        return int(granted), float(wait)

    def reserve_rows(self, project: str, cap: int, want: int) -> tuple[date, int]:
        """Up to ``want`` of ``project``'s rows for today (UTC, the server's day), within
        ``cap``: that day and the rows granted."""
        day, granted = self._call(
            "SELECT day, granted FROM limits.reserve_rows(%s, %s, %s)", (project, cap, want)
        )
        return day, int(granted)

    def return_rows(self, project: str, day: date, rows: int) -> None:
        self._call("SELECT limits.return_rows(%s, %s, %s)", (project, day, rows))

    def acquire_slot(self, subject: str, cap: int, ttl_seconds: float) -> int | None:
        """One more of ``subject``'s in-flight slots for this holder, if all holders together
        have fewer than ``cap``: the slots still free after it, or None if none was free. It
        expires after ``ttl_seconds`` unless renewed."""
        (free,) = self._call(
            "SELECT limits.acquire_slot(%s, %s, %s, %s)", (subject, self.holder, cap, ttl_seconds)
        )
        return None if free < 0 else int(free)

    def release_slots(self, subject: str, n: int) -> None:
        self._call("SELECT limits.release_slots(%s, %s, %s)", (subject, self.holder, n))

    def renew_slots(self, ttl_seconds: float) -> None:
        self._call("SELECT limits.renew_slots(%s, %s)", (self.holder, ttl_seconds))

    def _close(self) -> None:
        if self._conn is not None and not self._conn.closed:
            self._conn.close()
        self._conn = None

    def close(self) -> None:
        with self._lock:
            self._close()
