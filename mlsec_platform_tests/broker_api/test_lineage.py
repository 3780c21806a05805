"""Lineage from the Dagster event log, read by the broker with its own read-only login."""

from __future__ import annotations

import time
import uuid
from contextlib import closing
from datetime import UTC, datetime

import dagster as dg
import psycopg2
import pytest
from psycopg2 import errors

from broker_api.lineage import LINEAGE_ROLE, AssetLineage, LineageReader, LineageUnavailable
from mlsec_platform.identities.catalog import IDENTITIES
from mlsec_platform.resources.leased_login import LeasedLogin
from mlsec_platform.resources.vault import VaultAccessDenied
from mlsec_platform_tests.conftest import READER_TTL_SECONDS
from mlsec_platform_tests.curated_data import run_curated
from mlsec_platform_tests.helpers import vault_as

CURATED_KEYS = [
    dg.AssetKey(["silver", "customers"]),
    dg.AssetKey(["silver", "products"]),
    dg.AssetKey(["gold", "fact_order_item"]),
    dg.AssetKey(["features", "customer_rfm"]),
    dg.AssetKey(["warehouse", "customer_rfm_online"]),
]
CACHE_TTL = 0.5
APPLICATION = "mlsec-broker-lineage"


@pytest.fixture(scope="module")
def broker_vault(settings, endpoints):
    vault = vault_as("broker", settings, endpoints)
    yield vault
    vault.revoke()


@pytest.fixture(scope="module")
def reader(curated, broker_vault, settings, endpoints):
    reader = LineageReader.from_vault(
        broker_vault,
        endpoints.postgres_host,
        endpoints.postgres_port,
        settings.dagster_db,
        ttl_seconds=CACHE_TTL,
    )
    yield reader
    reader.close()


@pytest.fixture
def lineage_login(settings, endpoints):
    """(connection to the Dagster database, login) of a `lineage-reader` user of the broker."""
    login = LeasedLogin(vault_as("broker", settings, endpoints), LINEAGE_ROLE, margin_seconds=0)
    conn = login.connect(endpoints.postgres_host, endpoints.postgres_port, settings.dagster_db)
    conn.autocommit = True
    yield conn, login
    conn.close()
    login.revoke()


def _expected(instance: dg.DagsterInstance, key: dg.AssetKey) -> dict:
    entry = instance.get_latest_materialization_event(key)
    materialization = entry.asset_materialization
    return {
        "asset_key": key.to_user_string(),
        "run_id": entry.run_id,
        "delta_version": materialization.metadata["delta_version"].value,
        "materialized_at": datetime.fromtimestamp(entry.timestamp, UTC),
        "code_version": materialization.tags["dagster/code_version"],
        "upstream": tuple(materialization.metadata["lineage/inputs"].value.items()),
    }


@pytest.mark.parametrize("key", CURATED_KEYS, ids=lambda k: k.to_user_string())
def test_latest_is_the_instances_latest_materialization(key, reader, curated):
    from mlsec_platform.definitions import defs

    lineage = reader.latest(key)
    expected = _expected(curated.instance, key)
    assert {k: getattr(lineage, k) for k in expected} == expected
    assert lineage.upstream, "every curated asset records what it read"
    # The code version is the asset definition's own (not Dagster's run-id fallback).
    assert lineage.code_version == defs().resolve_assets_def(key).code_versions_by_key[key]
    assert lineage.storage_id > 0


def test_latest_is_cached_for_its_ttl(reader):
    key = CURATED_KEYS[0]
    first = reader.latest(key)
    assert reader.latest(key) is first
    calls = 20_000
    started = time.perf_counter()
    for _ in range(calls):
        reader.latest(key)
    cached = (time.perf_counter() - started) / calls
    time.sleep(CACHE_TTL + 0.1)
    again = reader.latest(key)
    assert again == first and again is not first

    uncached = []
    for _ in range(30):
        time.sleep(CACHE_TTL + 0.01)
        started = time.perf_counter()
        reader.latest(key)
        uncached.append(time.perf_counter() - started)
    uncached.sort()
    print(
        f"\nlineage latest(): cached {cached * 1e6:.2f} us; uncached median "
        f"{uncached[len(uncached) // 2] * 1e3:.2f} ms, max {uncached[-1] * 1e3:.2f} ms"
    )
    assert cached < 20e-6  # << 0.1 ms
    assert uncached[len(uncached) // 2] < 0.1


def test_at_version_finds_an_older_materialization(reader, curated):
    key = dg.AssetKey(["silver", "product_categories"])
    before = reader.latest(key)
    result = run_curated(curated.resources, curated.instance, asset_selection=[key])
    assert result.success
    time.sleep(CACHE_TTL + 0.1)
    after = reader.latest(key)
    assert after.delta_version == before.delta_version + 1
    assert after.run_id == result.run_id != before.run_id
    assert after.materialized_at > before.materialized_at
    assert reader.at_version(key, before.delta_version) == before
    assert reader.at_version(key, after.delta_version) == after
    with pytest.raises(LineageUnavailable):
        reader.at_version(key, after.delta_version + 1)


def test_a_never_materialized_asset_has_no_lineage(reader):
    key = dg.AssetKey(["silver", f"never_{uuid.uuid4().hex[:8]}"])
    with pytest.raises(LineageUnavailable):
        reader.latest(key)
    with pytest.raises(LineageUnavailable):
        reader.at_version(key, 0)


def test_the_reader_outlives_its_logins(curated, broker_vault, settings, endpoints):
    """Each login is replaced before its lease ends; the reader never notices."""
    reader = LineageReader.from_vault(
        broker_vault,
        endpoints.postgres_host,
        endpoints.postgres_port,
        settings.dagster_db,
        ttl_seconds=0,
    )
    try:
        key = CURATED_KEYS[0]
        first = reader.latest(key)
        time.sleep(READER_TTL_SECONDS + 2)  # the first login has expired and been dropped
        assert reader.latest(key) == first
    finally:
        reader.close()


def _lineage_sessions(cur) -> set[str]:
    cur.execute(
        "SELECT DISTINCT usename FROM pg_stat_activity WHERE application_name = %s", (APPLICATION,)
    )
    return {row[0] for row in cur.fetchall()}


def test_close_revokes_the_login(curated, broker_vault, settings, endpoints, superuser_dsn):
    with closing(psycopg2.connect(**superuser_dsn)) as conn:
        conn.autocommit = True
        with conn.cursor() as cur:
            before = _lineage_sessions(cur)
            reader = LineageReader.from_vault(
                broker_vault, endpoints.postgres_host, endpoints.postgres_port, settings.dagster_db
            )
            reader.latest(CURATED_KEYS[0])
            users = list(_lineage_sessions(cur) - before)  # its session stays open (pooled)
            assert len(users) == 1 and users[0] != "dagster"
            reader.close()
            cur.execute("SELECT count(*) FROM pg_roles WHERE rolname = ANY(%s)", (users,))
            assert cur.fetchone() == (0,)
            assert not _lineage_sessions(cur) & set(users)


def test_the_lineage_login_can_only_select(lineage_login):
    conn, _ = lineage_login
    writes = (
        "INSERT INTO event_logs (run_id, event) VALUES ('x', 'x')",
        "UPDATE runs SET status = 'CANCELED'",
        "DELETE FROM event_logs",
        "TRUNCATE asset_keys",
        "CREATE TABLE public.lineage_was_here (id int)",
        "CREATE SCHEMA lineage_was_here",
    )
    with conn.cursor() as cur:
        cur.execute("SELECT current_user, pg_has_role(current_user, 'dagster', 'MEMBER')")
        user, is_owner = cur.fetchone()
        assert user != "dagster" and not is_owner
        cur.execute("SELECT count(*) FROM event_logs")
        assert cur.fetchone()[0] > 0
        for statement in writes:  # sessions are read-only by default...
            with pytest.raises(errors.ReadOnlySqlTransaction):
                cur.execute(statement)
        cur.execute("SET default_transaction_read_only = off")
        for statement in writes:  # ...and the role holds no write grant anyway
            with pytest.raises(errors.InsufficientPrivilege):
                cur.execute(statement)


def test_tables_dagster_creates_later_are_readable(lineage_login, settings, endpoints):
    """Dagster creates tables lazily, as its owner: the reader's grant covers them too."""
    conn, _ = lineage_login
    dagster = vault_as("orchestrator", settings, endpoints).read_kv("postgres/dagster")
    table = f"probe_{uuid.uuid4().hex[:8]}"
    owner = psycopg2.connect(
        **settings.postgres_tls(),
        host=endpoints.postgres_host,
        port=endpoints.postgres_port,
        dbname=settings.dagster_db,
        user=dagster["username"],
        password=dagster["password"],
    )
    owner.autocommit = True
    try:
        with owner.cursor() as cur:
            cur.execute(f"CREATE TABLE public.{table} (id int)")
            cur.execute(f"INSERT INTO public.{table} VALUES (1)")
        with conn.cursor() as cur:
            cur.execute(f"SELECT id FROM public.{table}")
            assert cur.fetchall() == [(1,)]
    finally:
        with owner.cursor() as cur:
            cur.execute(f"DROP TABLE IF EXISTS public.{table}")
        owner.close()


def test_the_lineage_login_cannot_reach_the_warehouse_or_audit(lineage_login, settings, endpoints):
    _, login = lineage_login
    with pytest.raises(psycopg2.OperationalError, match="permission denied"):
        login.connect(endpoints.postgres_host, endpoints.postgres_port, settings.warehouse_db)
    with pytest.raises(psycopg2.OperationalError, match="permission denied"):
        login.connect(endpoints.postgres_host, endpoints.postgres_port, "postgres")
    conn, _ = lineage_login
    with conn.cursor() as cur:  # and the Dagster database holds no warehouse or audit data
        cur.execute(
            "SELECT count(*) FROM pg_namespace WHERE nspname IN ('gold', 'features', 'audit')"
        )
        assert cur.fetchone() == (0,)


def test_bootstrap_again_keeps_exactly_select_on_the_instance(
    curated, reader, settings, endpoints, superuser_dsn
):
    """Re-run on a stack whose Dagster tables exist: the group reads them all, writes none."""
    from mlsec_platform.stack.bootstrap import bootstrap

    bootstrap(settings, endpoints)
    dsn = {**superuser_dsn, "dbname": settings.dagster_db}
    with closing(psycopg2.connect(**dsn)) as conn, conn.cursor() as cur:
        cur.execute(
            """SELECT c.relname, has_table_privilege('lineage_reader', c.oid, 'SELECT'),
                      has_table_privilege('lineage_reader', c.oid,
                                          'INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER')
               FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
               WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm')"""
        )
        tables = cur.fetchall()
        cur.execute(
            """SELECT has_database_privilege('lineage_reader', %s, 'CONNECT'),
                      has_database_privilege('lineage_reader', %s, 'CONNECT'),
                      has_database_privilege('lineage_reader', %s, 'CREATE, TEMPORARY'),
                      has_schema_privilege('lineage_reader', 'public', 'CREATE')""",
            (settings.dagster_db, settings.warehouse_db, settings.dagster_db),
        )
        assert cur.fetchone() == (True, False, False, False)
    assert {"event_logs", "asset_keys", "runs"} <= {name for name, _, _ in tables}
    assert [name for name, select, write in tables if not select or write] == []
    time.sleep(CACHE_TTL + 0.1)
    assert reader.latest(CURATED_KEYS[0]).asset_key == "silver/customers"


@pytest.mark.parametrize("identity", sorted(set(IDENTITIES) - {"broker"}))
def test_only_the_broker_may_draw_a_lineage_login(identity, broker_vault, settings, endpoints):
    lease = broker_vault.lease(f"database/creds/{LINEAGE_ROLE}")
    broker_vault.revoke_lease(lease)
    assert lease.duration <= READER_TTL_SECONDS
    vault = vault_as(identity, settings, endpoints)
    with pytest.raises(VaultAccessDenied):
        vault.lease(f"database/creds/{LINEAGE_ROLE}")
    vault.revoke()


def test_lineage_is_plain_data():
    lineage = AssetLineage("gold/x", 3, "run", datetime.now(UTC), "1", (("silver/y", 2),), 7)
    with pytest.raises(AttributeError):
        lineage.delta_version = 4  # type: ignore[misc]
