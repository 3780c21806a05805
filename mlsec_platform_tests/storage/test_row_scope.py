"""Row scope in the warehouse: a ``warehouse_reader`` session sees no row outside the scope
the broker granted it, whatever SQL it runs (issue 14: a leaked reader login must not widen
its own scope).

A small row-secured table is loaded the way the pipeline loads Gold (``load_table``, acting as
``warehouse_owner``) and read through a real Vault-issued reader login of the test stack.
"""

from __future__ import annotations

import uuid
from contextlib import closing

import psycopg2
import pyarrow as pa
import pytest
from psycopg2 import errors, sql

from mlsec_platform.catalog.governance import ColumnSpec, DatasetSpec, Purpose
from mlsec_platform.settings import Zone
from mlsec_platform.storage.row_scope import (
    ROW_SCOPE_SETTING,
    SESSION_SQL,
    RowScopeSigner,
    redeclare,
)
from mlsec_platform.storage.warehouse import load_table
from mlsec_platform_tests.helpers import grant_row_scope, pg_login, row_scope_signer

ROWS = {"c1": "SP", "c2": "SP", "c3": "RJ", "c4": "MG"}
SPEC = DatasetSpec(
    zone=Zone.GOLD,
    name="row_scope_probe",
    domain="customers",
    description="Probe rows for the row-scope tests.",
    columns=(
        ColumnSpec("customer_id", pa.string(), "Customer."),
        ColumnSpec("customer_state", pa.string(), "UF."),
    ),
    key=("customer_id",),
    purposes=frozenset({Purpose.ANALYTICS}),
    row_security_key="customer_state",
)


@pytest.fixture(scope="module")
def probe_table(superuser_dsn) -> str:
    """``gold.<probe>`` with four customers in three states, loaded as the pipeline does."""
    name = f"row_scope_probe_{uuid.uuid4().hex[:8]}"
    table = pa.table(
        {"customer_id": list(ROWS), "customer_state": list(ROWS.values())},
        schema=SPEC.arrow_schema(),
    )
    with closing(psycopg2.connect(**superuser_dsn)) as conn:
        with conn.cursor() as cur:
            cur.execute("SET ROLE warehouse_owner")
        load_table(conn, SPEC, table, schema="gold", name=name, delta_version=0, run_id="test")
        conn.commit()
    yield f"gold.{name}"
    with closing(psycopg2.connect(**superuser_dsn)) as conn, conn, conn.cursor() as cur:
        cur.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier("gold", name)))


@pytest.fixture
def reader(settings, endpoints):
    """An autocommit session of a fresh Vault-issued ``warehouse_reader`` login."""
    conn, login = pg_login("broker", "warehouse-reader", settings, endpoints)
    conn.autocommit = True
    try:
        yield conn
    finally:
        conn.close()
        login.revoke()


def _states(cur, table: str) -> list[str]:
    cur.execute(f"SELECT customer_state FROM {table} ORDER BY customer_id")  # noqa: S608
    return [r[0] for r in cur.fetchall()]


def test_a_reader_that_sets_its_own_scope_sees_nothing(reader, probe_table) -> None:
    with reader.cursor() as cur:
        assert _states(cur, probe_table) == []
        for forged in ("*", "SP", "SP,RJ,MG", "*;" + "0" * 64, "SP;deadbeef"):
            cur.execute("SELECT set_config('mlsec.row_scope', %s, false)", (forged,))
            assert _states(cur, probe_table) == [], forged
            cur.execute("SET mlsec.row_scope = '*'")
            assert _states(cur, probe_table) == [], "SET"
        for reset in ("RESET mlsec.row_scope", "RESET ALL", "DISCARD ALL"):
            cur.execute(reset)
            assert _states(cur, probe_table) == [], reset


def test_no_role_a_reader_can_become_widens_its_scope(reader, probe_table) -> None:
    with reader.cursor() as cur:
        cur.execute("SELECT rolname FROM pg_roles WHERE rolname <> current_user ORDER BY 1")
        roles = [r[0] for r in cur.fetchall()]
        became = []
        for role in roles:
            try:
                cur.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(role)))
            except errors.InsufficientPrivilege:
                continue
            became.append(role)
            cur.execute("SET mlsec.row_scope = '*'")
            assert _states(cur, probe_table) == [], role
            cur.execute("RESET ROLE")
        # The login may only become its own reader group: nothing that owns the table,
        # bypasses row security or holds the scope's signing key.
        assert became == ["warehouse_reader"], became


@pytest.fixture(scope="module")
def signer(settings, endpoints) -> RowScopeSigner:
    return row_scope_signer(settings, endpoints)


def test_the_scope_the_broker_signs_is_the_scope_the_reader_sees(
    reader, probe_table, signer
) -> None:
    with reader.cursor() as cur:
        grant_row_scope(cur, signer, "SP")
        assert _states(cur, probe_table) == ["SP", "SP"]
        grant_row_scope(cur, signer, "SP,MG")
        assert _states(cur, probe_table) == ["SP", "SP", "MG"]
        grant_row_scope(cur, signer, "*")
        assert _states(cur, probe_table) == ["SP", "SP", "RJ", "MG"]
        grant_row_scope(cur, signer, "")
        assert _states(cur, probe_table) == []
        # Becoming the reader group keeps the scope it was granted, and nothing more.
        grant_row_scope(cur, signer, "RJ")
        cur.execute("SET ROLE warehouse_reader")
        assert _states(cur, probe_table) == ["RJ"]
        cur.execute("RESET ROLE")
        cur.execute("DISCARD ALL")
        assert _states(cur, probe_table) == []


def test_a_signed_scope_is_worthless_in_any_other_session(
    reader, probe_table, signer, settings, endpoints
) -> None:
    other, login = pg_login("broker", "warehouse-reader", settings, endpoints)
    try:
        with other.cursor() as cur:
            cur.execute(SESSION_SQL)
            elsewhere = cur.fetchone()
        other.rollback()
    finally:
        other.close()
        login.revoke()
    with reader.cursor() as cur:
        cur.execute(SESSION_SQL)
        pid, started = cur.fetchone()
        # Another session's '*', this pid at another start (a reused pid), another pid.
        for backend in (elsewhere, (pid, started - 1), (pid + 1, started)):
            grant_row_scope(cur, signer, "*", backend)
            assert _states(cur, probe_table) == [], backend
        # A valid MAC with another scope put in front of it.
        grant_row_scope(cur, signer, "SP")
        cur.execute(f"SELECT current_setting('{ROW_SCOPE_SETTING}')")
        mac = cur.fetchone()[0].split(";")[1]
        for scope in ("*", "SP,RJ", "RJ"):
            cur.execute("SELECT set_config(%s, %s, false)", (ROW_SCOPE_SETTING, f"{scope};{mac}"))
            assert _states(cur, probe_table) == [], scope


def test_the_verifying_function_is_no_oracle_and_its_key_is_unreadable(reader, probe_table) -> None:
    with reader.cursor() as cur:
        cur.execute("SELECT set_config(%s, %s, false)", (ROW_SCOPE_SETTING, "*;" + "ab" * 32))
        cur.execute("SELECT row_security.granted_scope()")
        assert cur.fetchone()[0] == []
        cur.execute("SELECT (SELECT row_security.granted_scope()) && ARRAY['*', 'SP']")
        assert cur.fetchone()[0] is False
        with pytest.raises(errors.UndefinedFunction):  # it takes no input to forge
            cur.execute("SELECT row_security.granted_scope('*')")
        for table in ("row_security.signing_key",):
            with pytest.raises(errors.InsufficientPrivilege):
                cur.execute(f"SELECT * FROM {table}")  # noqa: S608
        # The login's read-only default is its own to lift: the privileges must hold alone.
        cur.execute("SET default_transaction_read_only = off")
        for ddl in (
            "CREATE OR REPLACE FUNCTION row_security.granted_scope() RETURNS text[] "
            "LANGUAGE sql AS $$ SELECT ARRAY['*'] $$",
            "CREATE FUNCTION pg_temp.granted_scope() RETURNS text[] "
            "LANGUAGE sql AS $$ SELECT ARRAY['*'] $$",
            f"ALTER TABLE {probe_table} DISABLE ROW LEVEL SECURITY",
            f"DROP POLICY row_scope ON {probe_table}",
        ):
            with pytest.raises(errors.InsufficientPrivilege):
                cur.execute(ddl)


def test_bootstrap_redeclares_the_policy_of_every_row_secured_warehouse_table() -> None:
    from mlsec_platform.defs.warehouse.assets import TARGETS
    from mlsec_platform.stack.bootstrap.postgres import row_secured_tables

    loaded = {
        (t.schema, t.name, t.source.row_security_key)
        for t in TARGETS
        if t.source.row_security_key is not None
    }
    assert loaded and set(row_secured_tables()) == loaded


def test_a_table_loaded_by_an_earlier_release_is_guarded_once_redeclared(
    reader, probe_table, superuser_dsn
) -> None:
    schema, table = probe_table.split(".")
    trusting = (
        "coalesce(current_setting('mlsec.row_scope', true), '') = '*' OR customer_state = "
        "ANY(string_to_array(nullif(current_setting('mlsec.row_scope', true), ''), ','))"
    )
    with closing(psycopg2.connect(**superuser_dsn)) as conn, conn, conn.cursor() as cur:
        cur.execute(f"ALTER POLICY row_scope ON {probe_table} USING ({trusting})")
    with reader.cursor() as cur:
        cur.execute("SET mlsec.row_scope = '*'")
        assert len(_states(cur, probe_table)) == 4  # the earlier release's hole
    with closing(psycopg2.connect(**superuser_dsn)) as conn, conn, conn.cursor() as cur:
        assert redeclare(cur, [(schema, table, "customer_state"), ("gold", "absent", "x")]) == [
            probe_table
        ]
    with reader.cursor() as cur:
        assert _states(cur, probe_table) == []


def test_the_signer_refuses_what_the_warehouse_would_misread() -> None:
    signer = RowScopeSigner(b"k" * 32)
    assert signer.sign("SP,RJ", 7, 1).startswith("SP,RJ;")
    assert signer.sign("", 7, 1) != signer.sign("", 8, 1)
    for scope in ("SP;*", "SP,", ",SP", "SP, RJ"):
        with pytest.raises(ValueError, match="not a row scope"):
            signer.sign(scope, 7, 1)
    with pytest.raises(ValueError, match="empty"):
        RowScopeSigner(b"")


def test_a_broker_without_its_scope_key_refuses_to_start_naming_the_fix(
    settings, endpoints
) -> None:
    """A stack bootstrapped by an earlier release has no row-scope key in OpenBao yet."""
    from broker_api.services import BrokerServices
    from mlsec_platform.errors import ConfigurationError
    from mlsec_platform.identities.catalog import BROKER_KEYS, ROW_SCOPE_SIGNING_KEY
    from mlsec_platform.stack.bootstrap.vault import read_kv, write_kv
    from mlsec_platform_tests.helpers import operator_vault

    vault = operator_vault(settings, endpoints)
    keys = read_kv(vault, BROKER_KEYS)
    write_kv(vault, BROKER_KEYS, {k: v for k, v in keys.items() if k != ROW_SCOPE_SIGNING_KEY})
    try:
        with pytest.raises(ConfigurationError, match="mlsec bootstrap"):
            BrokerServices.from_settings(settings)
    finally:
        write_kv(vault, BROKER_KEYS, keys)
