"""The warehouse's row scope: granted by the broker, signed, and verified inside Postgres.

Row-level security on the warehouse keys on the session setting ``mlsec.row_scope``. Any
session may set a custom setting to anything, so the setting alone guards nothing once a
``warehouse_reader`` login leaks. The value is therefore ``<scope>;<mac>``, where ``mac`` is
HMAC-SHA256 over ``<backend pid>:<backend start, epoch microseconds>:<scope>`` with a key the
broker reads from OpenBao, and the row policy sees only the scope that
``row_security.granted_scope()`` verifies.

Why this design, and not the alternatives:

* A role per scope would need one role per combination of row-security values a project may
  hold, Vault database roles for each, and a connection pool per scope in the broker; the
  signed setting keeps one reader login and one connection per broker thread.
* The key lives in ``row_security.signing_key``, a table only ``row_scope_owner`` (NOLOGIN)
  can read; the function that reads it runs as that owner (SECURITY DEFINER) with a fixed
  ``search_path``. A reader can call the function, but it takes no argument: it only ever
  verifies the calling session's own setting, so it is no signing oracle.
* The MAC binds the scope to one backend (its pid and start time): a signed value seen in
  ``pg_stat_activity`` or a log is useless in any other session, including a later one that
  reuses the pid. The broker asks for both once per connection, not per request.
* HMAC is built from the core ``sha256()`` function (the table holds the key's inner and
  outer pads), because pgcrypto is not part of every Postgres build (the embedded one has
  none). The policy reads the function through a scalar subquery, which Postgres evaluates
  once per statement (an InitPlan): one MAC check per query, not per row. Measured on the
  embedded Postgres (2026-12): a statement calling it costs about 24 us more than a bare
  one (7 us the call of a SECURITY DEFINER function at all, 7 us the backend-start lookup,
  2 us the key table, the rest the MAC); a 50,000-row scan costs the same under it as under
  the setting-trusting policy. The backend-start lookup is kept: binding to the pid alone
  (or pid and an expiry) would let a replay succeed in a later session that reuses the pid.
* Fail closed: no setting, a wrong MAC, another session's MAC, an empty key table, all give
  an empty scope (or NULL), and the policy shows no row.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from contextlib import closing

import psycopg2
from psycopg2 import sql

ROW_SCOPE_SETTING = "mlsec.row_scope"
SCHEMA = "row_security"
OWNER = "row_scope_owner"
#: The scope granting every row.
ALL_ROWS = "*"
_BLOCK = 64  # SHA-256's block size, for the HMAC pads

#: This backend's identity as the MAC binds it (asked once per connection).
SESSION_SQL = (
    "SELECT pid, (extract(epoch FROM backend_start) * 1000000)::bigint "
    "FROM pg_stat_get_activity(pg_backend_pid())"
)

_INSTALL = f"""
CREATE SCHEMA IF NOT EXISTS {SCHEMA} AUTHORIZATION {OWNER};
REVOKE ALL ON SCHEMA {SCHEMA} FROM PUBLIC;
CREATE TABLE IF NOT EXISTS {SCHEMA}.signing_key (
    one boolean PRIMARY KEY DEFAULT true CHECK (one),
    inner_pad bytea NOT NULL CHECK (length(inner_pad) = {_BLOCK}),
    outer_pad bytea NOT NULL CHECK (length(outer_pad) = {_BLOCK})
);
ALTER TABLE {SCHEMA}.signing_key OWNER TO {OWNER};
REVOKE ALL ON {SCHEMA}.signing_key FROM PUBLIC;
CREATE OR REPLACE FUNCTION {SCHEMA}.granted_scope() RETURNS text[]
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT CASE WHEN split_part(v.value, ';', 2) = encode(sha256(k.outer_pad || sha256(
                    k.inner_pad || convert_to(a.pid || ':'
                        || (extract(epoch FROM a.backend_start) * 1000000)::bigint || ':'
                        || split_part(v.value, ';', 1), 'UTF8'))), 'hex')
                THEN string_to_array(nullif(split_part(v.value, ';', 1), ''), ',')
                ELSE '{{}}'::text[] END
    FROM (SELECT current_setting('{ROW_SCOPE_SETTING}', true) AS value) v,
         pg_stat_get_activity(pg_backend_pid()) a,
         {SCHEMA}.signing_key k
$$;
ALTER FUNCTION {SCHEMA}.granted_scope() OWNER TO {OWNER};
REVOKE ALL ON FUNCTION {SCHEMA}.granted_scope() FROM PUBLIC;
GRANT USAGE ON SCHEMA {SCHEMA} TO warehouse_reader, warehouse_owner;
GRANT EXECUTE ON FUNCTION {SCHEMA}.granted_scope() TO warehouse_reader, warehouse_owner;
"""


def install(cur) -> None:
    """Create (or repair) the owner role's grants, the key table and the verifying function.

    Run as the superuser in the warehouse database. The owner reads every backend's start
    time (``pg_read_all_stats``): inside the function it is the current user, not the
    reader whose session it verifies. Until :func:`seed_key` runs the table is empty and the
    function grants nothing.
    """
    cur.execute(f"GRANT pg_read_all_stats TO {OWNER}")
    cur.execute(_INSTALL)


def seed_key(superuser_dsn: dict, warehouse_db: str, key: bytes) -> None:
    """Store the pads of the broker's row-scope key (from OpenBao) in the key table."""
    inner, outer = _pads(key)
    conn = psycopg2.connect(**{**superuser_dsn, "dbname": warehouse_db})
    with closing(conn), conn, conn.cursor() as cur:
        cur.execute(
            sql.SQL(
                "INSERT INTO {} (one, inner_pad, outer_pad) VALUES (true, %s, %s) "
                "ON CONFLICT (one) DO UPDATE SET inner_pad = EXCLUDED.inner_pad, "
                "outer_pad = EXCLUDED.outer_pad"
            ).format(sql.Identifier(SCHEMA, "signing_key")),
            (inner, outer),
        )


def policy_expression(key_column: str) -> sql.Composable:
    """The row policy of a table row-secured on ``key_column``: its value, or ``*``, is in
    the verified scope. The scalar subquery makes the check run once per statement."""
    return sql.SQL("(SELECT {}.granted_scope()) && ARRAY[{}, {}::text]").format(
        sql.Identifier(SCHEMA), sql.Literal(ALL_ROWS), sql.Identifier(key_column)
    )


def redeclare(cur, tables: Iterable[tuple[str, str, str]]) -> list[str]:
    """(Re)declare the row policy of each existing ``(schema, table, key column)``, so tables
    an earlier release loaded, whose policy trusted the setting itself, are guarded from the
    next bootstrap on rather than from their next load. Returns the tables it declared."""
    declared = []
    for schema, table, key_column in tables:
        target = sql.Identifier(schema, table)
        cur.execute("SELECT to_regclass(%s)", (target.as_string(cur),))
        if cur.fetchone()[0] is None:
            continue
        cur.execute(sql.SQL("ALTER TABLE {} ENABLE ROW LEVEL SECURITY").format(target))
        cur.execute(sql.SQL("DROP POLICY IF EXISTS row_scope ON {}").format(target))
        cur.execute(
            sql.SQL(
                "CREATE POLICY row_scope ON {} FOR SELECT TO warehouse_reader USING ({})"
            ).format(target, policy_expression(key_column))
        )
        declared.append(f"{schema}.{table}")
    return declared


def _pads(key: bytes) -> tuple[bytes, bytes]:
    if not key:
        raise ValueError("the row-scope key is empty")
    if len(key) > _BLOCK:
        key = hashlib.sha256(key).digest()
    key = key.ljust(_BLOCK, b"\0")
    return bytes(b ^ 0x36 for b in key), bytes(b ^ 0x5C for b in key)


class RowScopeSigner:
    """Signs a scope for one backend, the way ``row_security.granted_scope()`` verifies it."""

    def __init__(self, key: bytes) -> None:
        _pads(key)  # refuses an empty key here, not at the first request
        self._key = key

    def sign(self, scope: str, pid: int, started: int) -> str:
        """The setting value granting ``scope`` ('*', 'SP,RJ' or '') to the backend ``pid``
        started at ``started`` (epoch microseconds, as :data:`SESSION_SQL` reports it)."""
        values = scope.split(",") if scope else []
        if ";" in scope or any(not v or v != v.strip() for v in values):
            raise ValueError(f"not a row scope: {scope!r}")
        message = f"{pid}:{started}:{scope}".encode()
        return f"{scope};{hmac.new(self._key, message, hashlib.sha256).hexdigest()}"
