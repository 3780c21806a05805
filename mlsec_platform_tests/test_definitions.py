"""A snapshot of the asset graph: keys, dependencies, checks, sensors and schedules change
only on purpose."""

from mlsec_platform.catalog.datasets import GOLD, SILVER
from mlsec_platform.catalog.sources import FILE_SOURCES
from mlsec_platform.definitions import defs
from mlsec_platform.transforms.gold import GOLD_QUERIES

RAW = {"deps": [], "checks": [], "group": "raw"}
EXPECTED_GRAPH = {
    "silver/br_states": {"deps": [], "checks": ["br_states_complete"], "group": "reference"},
    "raw/events_order_status": RAW,
    "raw/bcb_sgs_433": RAW,
    "raw/openweather_current": RAW,
    **{f"raw/{source}": RAW for source in FILE_SOURCES},
}
GATE = ["quality_gate"]
SILVER_FROM_RAW = {
    "customers": "olist_customers",
    "orders": "olist_orders",
    "order_items": "olist_order_items",
    "order_payments": "olist_order_payments",
    "order_reviews": "olist_order_reviews",
    "products": "olist_products",
    "sellers": "olist_sellers",
    "geolocation": "olist_geolocation",
    "product_categories": "product_category_name_translation",
    "order_events": "events_order_status",
}
for name, source in SILVER_FROM_RAW.items():
    deps = [f"raw/{source}"] + (["silver/product_categories"] if name == "products" else [])
    EXPECTED_GRAPH[f"silver/{name}"] = {"deps": sorted(deps), "checks": GATE, "group": "silver"}
for name, (_, inputs) in GOLD_QUERIES.items():
    deps = sorted(
        f"{'gold' if i in ('fact_order_item', 'dim_product') else 'silver'}/{i}" for i in inputs
    )
    EXPECTED_GRAPH[f"gold/{name}"] = {"deps": deps, "checks": GATE, "group": "gold"}
EXPECTED_GRAPH["gold/dim_date"] = {"deps": ["silver/orders"], "checks": GATE, "group": "gold"}
for name in [*GOLD_QUERIES, "dim_date"]:
    EXPECTED_GRAPH[f"warehouse/{name}"] = {
        "deps": [f"gold/{name}"],
        "checks": [],
        "group": "warehouse",
    }
EXPECTED_GRAPH["features/customer_rfm"] = {
    "deps": ["gold/fact_order_item"],
    "checks": GATE,
    "group": "features",
}
EXPECTED_GRAPH["warehouse/customer_rfm_online"] = {
    "deps": ["features/customer_rfm"],
    "checks": [],
    "group": "warehouse",
}


def test_every_catalog_dataset_is_an_asset(supervisor):
    keys = {k.to_user_string() for k in defs().resolve_asset_graph().get_all_asset_keys()}
    assert set(SILVER) | set(GOLD) | {"features/customer_rfm"} <= keys


def test_asset_graph_snapshot(supervisor):
    definitions = defs()
    graph = definitions.resolve_asset_graph()
    snapshot = {}
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        snapshot[key.to_user_string()] = {
            "deps": sorted(k.to_user_string() for k in node.parent_keys),
            "checks": sorted(c.name for c in node.check_keys),
            "group": node.group_name,
        }
    assert snapshot == EXPECTED_GRAPH
    assert sorted(s.name for s in definitions.sensors) == [
        "landing_files_sensor",
        "nats_events_sensor",
    ]
    assert sorted(s.name for s in definitions.schedules) == [
        "bcb_sgs_433_daily",
        "openweather_current_hourly",
    ]


def test_every_asset_has_a_docstring_and_code_version(supervisor):
    graph = defs().resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        assert node.description, f"{key.to_user_string()} needs a docstring (shown in the UI)"
        assert node.code_version, f"{key.to_user_string()} needs a code_version"
