"""Dynamic Postgres users from OpenBao: least privilege, and gone when their lease ends."""

import time
import uuid
from contextlib import closing

import psycopg2
import pytest
from psycopg2 import errors

from mlsec_platform_tests.conftest import READER_TTL_SECONDS
from mlsec_platform_tests.helpers import pg_login


@pytest.fixture(scope="module")
def gold_table(settings, endpoints):
    """A table the pipeline's writer creates in gold (owned by warehouse_owner, not the user)."""
    name = f"probe_{uuid.uuid4().hex[:8]}"
    conn, login = pg_login("pipeline", "warehouse-writer", settings, endpoints)
    with closing(conn), conn, conn.cursor() as cur:
        cur.execute(f"CREATE TABLE gold.{name} (id int PRIMARY KEY, label text)")
        cur.execute(f"INSERT INTO gold.{name} VALUES (1, 'one')")
        cur.execute(
            "SELECT tableowner FROM pg_tables WHERE schemaname='gold' AND tablename=%s", (name,)
        )
        assert cur.fetchone() == ("warehouse_owner",)
    login.revoke()  # the table outlives the login that created it
    return f"gold.{name}"


def test_reader_can_select_but_not_write(gold_table, settings, endpoints):
    conn, login = pg_login("broker", "warehouse-reader", settings, endpoints)
    conn.autocommit = True
    writes = (
        f"INSERT INTO {gold_table} VALUES (2, 'two')",
        f"UPDATE {gold_table} SET label = 'x'",
        f"DELETE FROM {gold_table}",
        "CREATE TABLE gold.reader_was_here (id int)",
    )
    with closing(conn), conn.cursor() as cur:
        cur.execute(f"SELECT label FROM {gold_table} WHERE id = 1")
        assert cur.fetchone() == ("one",)
        for statement in writes:  # sessions are read-only by default...
            with pytest.raises(errors.ReadOnlySqlTransaction):
                cur.execute(statement)
        cur.execute("SET default_transaction_read_only = off")
        for statement in writes:  # ...and the role holds no write grant anyway
            with pytest.raises(errors.InsufficientPrivilege):
                cur.execute(statement)
    login.revoke()


def test_reader_stops_working_after_its_ttl(settings, endpoints):
    conn, login = pg_login("broker", "warehouse-reader", settings, endpoints)
    lease = login.current()
    assert lease.duration == READER_TTL_SECONDS
    with conn.cursor() as cur:
        cur.execute("SELECT 1")
    time.sleep(READER_TTL_SECONDS + 4)
    # The open session was ended by the revocation, and the login no longer exists.
    with pytest.raises(psycopg2.OperationalError), conn.cursor() as cur:
        cur.execute("SELECT 1")
    with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
        psycopg2.connect(
            **settings.postgres_tls(),
            host=endpoints.postgres_host,
            port=endpoints.postgres_port,
            dbname=settings.warehouse_db,
            user=lease.data["username"],
            password=lease.data["password"],
            connect_timeout=5,
        )


def test_audit_writer_can_only_insert(settings, endpoints):
    conn, login = pg_login("pipeline", "audit-writer", settings, endpoints)
    conn.autocommit = True
    with closing(conn), conn.cursor() as cur:
        cur.execute(
            "INSERT INTO audit.events (event_id, event_type, actor, payload)"
            " VALUES (%s, %s, %s, %s)",
            (str(uuid.uuid4()), "test.probe", "pipeline", "{}"),
        )
        for statement in (
            "SELECT * FROM audit.events",
            "UPDATE audit.events SET actor = 'x'",
            "DELETE FROM audit.events",
            "TRUNCATE audit.events",
        ):
            with pytest.raises(errors.InsufficientPrivilege):
                cur.execute(statement)
    login.revoke()


def test_dagster_login_cannot_reach_the_warehouse(supervisor, settings, endpoints):
    from mlsec_platform_tests.helpers import vault_as

    dagster = vault_as("orchestrator", settings, endpoints).read_kv("postgres/dagster")
    with pytest.raises(psycopg2.OperationalError, match="permission denied"):
        psycopg2.connect(
            **settings.postgres_tls(),
            host=endpoints.postgres_host,
            port=endpoints.postgres_port,
            dbname=settings.warehouse_db,
            user=dagster["username"],
            password=dagster["password"],
        )
