"""PostgresWarehouseResource: a Vault-issued writer, transactional, and its fetch audited."""

import uuid
from contextlib import closing

import dagster as dg
import psycopg2
import pytest

from mlsec_platform.defs.resources import build_resources
from mlsec_platform.resources.postgres import PostgresWarehouseResource


def test_warehouse_writer_loads_a_table_in_one_transaction(settings, superuser_dsn):
    table = f"gold.load_probe_{uuid.uuid4().hex[:8]}"

    @dg.asset
    def load_probe(warehouse: PostgresWarehouseResource) -> None:
        with warehouse.connection() as conn, conn.cursor() as cur:
            cur.execute(f"CREATE TABLE {table} (id int PRIMARY KEY)")
            cur.execute(f"INSERT INTO {table} SELECT generate_series(1, 100)")

    @dg.asset
    def failing_load(warehouse: PostgresWarehouseResource) -> None:
        with warehouse.connection() as conn, conn.cursor() as cur:
            cur.execute(f"INSERT INTO {table} SELECT generate_series(101, 200)")
            raise RuntimeError("crash half way through a load")

    resources = build_resources(settings)
    result = dg.materialize([load_probe], resources=resources)
    assert result.success
    assert not dg.materialize([failing_load], resources=resources, raise_on_error=False).success

    with closing(psycopg2.connect(**superuser_dsn)) as conn, conn.cursor() as cur:
        cur.execute(f"SELECT count(*), max(id) FROM {table}")
        assert cur.fetchone() == (100, 100)  # the crashed load left nothing behind
        cur.execute(
            "SELECT tableowner FROM pg_tables WHERE schemaname || '.' || tablename = %s", (table,)
        )
        assert cur.fetchone() == ("warehouse_owner",)
        cur.execute(
            "SELECT count(*) FROM audit.events WHERE run_id = %s AND event_type = 'secret.read' "
            "AND payload->>'path' = 'database/creds/warehouse-writer'",
            (result.run_id,),
        )
        assert cur.fetchone() == (1,)


def test_reader_role_is_read_only(settings, endpoints):
    resources = build_resources(settings)
    reader = PostgresWarehouseResource(
        vault=resources["vault_pipeline"].model_copy(update={"identity": "broker"}),
        audit=resources["audit_pipeline"],
        host=endpoints.postgres_host,
        port=endpoints.postgres_port,
        dbname=settings.warehouse_db,
        role="warehouse-reader",
    )
    with pytest.raises(psycopg2.errors.ReadOnlySqlTransaction):  # noqa: SIM117
        with reader.connection() as conn, conn.cursor() as cur:
            cur.execute("CREATE TABLE gold.should_not_exist (id int)")
