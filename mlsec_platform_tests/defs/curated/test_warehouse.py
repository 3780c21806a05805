"""Gold and features in Postgres: one transaction per load, row-level security, lineage."""

import dagster as dg
import pyarrow.compute as pc

from mlsec_platform_tests.defs.curated.helpers import read, version
from mlsec_platform_tests.helpers import grant_row_scope, pg_login, row_scope_signer


def _count(cur, sql: str) -> int:
    cur.execute(sql)
    return cur.fetchone()[0]


def test_row_level_security_fails_closed_and_scopes_rows(curated, settings, endpoints):
    fact = read(curated, "gold", "fact_order_item", ["customer_state"])
    sp = pc.sum(pc.equal(fact.column(0), "SP")).as_py()
    signer = row_scope_signer(settings, endpoints)
    conn, login = pg_login("broker", "warehouse-reader", settings, endpoints)
    try:
        with conn.cursor() as cur:
            assert _count(cur, "SELECT count(*) FROM gold.fact_order_item") == 0
            grant_row_scope(cur, signer, "SP")
            assert _count(cur, "SELECT count(*) FROM gold.fact_order_item") == sp
            grant_row_scope(cur, signer, "SP,RJ")
            assert _count(cur, "SELECT count(*) FROM gold.fact_order_item") > sp
            grant_row_scope(cur, signer, "*")
            assert _count(cur, "SELECT count(*) FROM gold.fact_order_item") == fact.num_rows
            # Scopes the session sets itself are worth nothing (storage/row_scope.py).
            cur.execute("SET mlsec.row_scope = '*'")
            assert _count(cur, "SELECT count(*) FROM gold.fact_order_item") == 0
            # Tables without a row-security key are readable whatever the scope.
            assert _count(cur, "SELECT count(*) FROM gold.dim_product") > 0
        conn.rollback()
    finally:
        conn.close()
        login.revoke()


def test_each_load_records_the_delta_version_it_loaded(curated, superuser_dsn):
    import psycopg2

    with psycopg2.connect(**superuser_dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT table_name, delta_version, rows FROM gold.loads")
        loads = {name: (v, rows) for name, v, rows in cur.fetchall()}
        cur.execute(
            "SELECT count(*), max(purchased_at), min(delivered_at) FROM gold.fact_order_item"
        )
        loaded_rows, latest_purchase, first_delivery = cur.fetchone()
    conn.close()
    event = curated.instance.get_latest_materialization_event(
        dg.AssetKey(["warehouse", "fact_order_item"])
    )
    meta = event.asset_materialization.metadata
    loaded_version = meta["delta_version"].value
    assert loads["fact_order_item"] == (loaded_version, loaded_rows)
    assert loaded_rows == meta["dagster/row_count"].value
    loaded = read(curated, "gold", "fact_order_item", ["order_id"])
    assert loaded_version <= version(curated, "gold", "fact_order_item")
    assert loaded_rows == loaded.num_rows
    # Times arrive as the same instants (UTC), not shifted by a session time zone.
    times = read(curated, "gold", "fact_order_item", ["purchased_at", "delivered_at"])
    assert latest_purchase == pc.max(times.column("purchased_at")).as_py()
    assert first_delivery == pc.min(times.column("delivered_at")).as_py()
    assert set(loads) >= {"dim_customer", "dim_product", "dim_seller", "dim_date", "kpi_delivery"}


def test_the_online_store_is_keyed_by_customer_token(curated, superuser_dsn):
    import psycopg2

    with psycopg2.connect(**superuser_dsn) as conn, conn.cursor() as cur:
        cur.execute(
            """SELECT a.attname FROM pg_index i
               JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
               WHERE i.indrelid = 'features.customer_rfm_online'::regclass AND i.indisprimary"""
        )
        assert [r[0] for r in cur.fetchall()] == ["customer_token"]
    conn.close()


def test_online_features_are_the_latest_offline_row_per_customer(curated, settings, endpoints):
    offline = read(curated, "features", "customer_rfm")
    people = pc.count_distinct(offline.column("customer_token")).as_py()
    assert offline.num_rows > people  # history: several months for repeat buyers
    signer = row_scope_signer(settings, endpoints)
    conn, login = pg_login("broker", "warehouse-reader", settings, endpoints)
    try:
        with conn.cursor() as cur:
            grant_row_scope(cur, signer, "*")
            cur.execute(
                "SELECT count(*), count(DISTINCT customer_token), min(feature_group_version), "
                "max(feature_group_version), bool_and(materialized_at IS NOT NULL) "
                "FROM features.customer_rfm_online"
            )
            rows, distinct, vmin, vmax, stamped = cur.fetchone()
        conn.rollback()
    finally:
        conn.close()
        login.revoke()
    assert rows == distinct == people
    assert vmin == vmax == "customer_rfm:v1" and stamped
    event = curated.instance.get_latest_materialization_event(
        dg.AssetKey(["features", "customer_rfm"])
    )
    assert event.asset_materialization.metadata["entities"].value == people


def test_rfm_history_is_point_in_time(curated):
    offline = read(curated, "features", "customer_rfm").sort_by(
        [("customer_token", "ascending"), ("event_timestamp", "ascending")]
    )
    rows = offline.select(["customer_token", "frequency", "monetary"]).to_pylist()
    repeat = 0
    for before, after in zip(rows, rows[1:], strict=False):
        if before["customer_token"] == after["customer_token"]:
            repeat += 1
            assert after["frequency"] > before["frequency"]
            assert after["monetary"] > before["monetary"]
    assert repeat > 100


def test_lineage_names_the_input_versions_read(curated):
    instance = curated.instance
    fact = instance.get_latest_materialization_event(dg.AssetKey(["gold", "fact_order_item"]))
    inputs = fact.asset_materialization.metadata["lineage/inputs"].value
    assert set(inputs) == {
        "silver/order_items",
        "silver/orders",
        "silver/customers",
        "silver/sellers",
        "silver/order_reviews",
    }
    for asset, read_version in inputs.items():
        # The version read is the one the latest earlier materialization of the input made.
        records = instance.fetch_materializations(dg.AssetKey(asset.split("/")), limit=50).records
        earlier = [r for r in records if r.timestamp < fact.timestamp]
        latest = max(earlier, key=lambda r: r.timestamp)
        assert latest.asset_materialization.metadata["delta_version"].value == read_version
    items = instance.get_latest_materialization_event(dg.AssetKey(["silver", "order_items"]))
    raw = items.asset_materialization.metadata["lineage/inputs"].value
    assert list(raw) == ["raw/olist_order_items"] and raw["raw/olist_order_items"] >= 0
