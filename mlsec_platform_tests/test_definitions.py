"""The code location: it loads with no server running, its graph changes only on purpose, and
its resources find the stack when a run starts (failing closed when there is none)."""

from __future__ import annotations

import os
from contextlib import closing
from pathlib import Path

import dagster as dg
import psycopg2
import pytest

from mlsec_platform.catalog.datasets import GOLD, SILVER
from mlsec_platform.catalog.sources import FILE_SOURCES
from mlsec_platform.definitions import defs
from mlsec_platform.defs.raw.files import landing_files_sensor
from mlsec_platform.defs.reference.assets import br_states
from mlsec_platform.errors import ConfigurationError
from mlsec_platform.resources.running_stack import StackAddressedResource
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


@pytest.fixture
def no_stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Placeholder settings: a state folder where no stack ever ran (as on a fresh clone)."""
    for name in [n for n in os.environ if n.startswith("MLSEC_")]:
        monkeypatch.delenv(name)
    state = tmp_path / ".mlsec"
    monkeypatch.setenv("MLSEC_STATE_DIR", str(state))
    return state


@pytest.fixture
def definitions(no_stack: Path) -> dg.Definitions:
    return defs()


def test_every_catalog_dataset_is_an_asset(definitions):
    keys = {k.to_user_string() for k in definitions.resolve_asset_graph().get_all_asset_keys()}
    assert set(SILVER) | set(GOLD) | {"features/customer_rfm"} <= keys


def test_asset_graph_snapshot(definitions):
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


def test_every_asset_has_a_docstring_and_code_version(definitions):
    graph = definitions.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        assert node.description, f"{key.to_user_string()} needs a docstring (shown in the UI)"
        assert node.code_version, f"{key.to_user_string()} needs a code_version"


def test_loading_resolves_no_address(definitions, no_stack):
    """Every server address of the code location is left to the stack of the run."""
    assert not no_stack.exists()
    addressed = {
        key: resource
        for key, resource in definitions.resources.items()
        if isinstance(resource, StackAddressedResource)
    }
    assert {"vault_pipeline", "lake_connector", "nats_connector", "warehouse"} <= set(addressed)
    for key, resource in addressed.items():
        assert resource.unresolved_addresses() == list(resource.stack_addresses), key


def _configuration_errors(result: dg.ExecuteInJobResult) -> list[str]:
    failures = [e for e in result.all_events if e.is_failure]
    messages = []
    for event in failures:
        error = event.event_specific_data.error
        while error is not None:
            if error.cls_name == "ConfigurationError":
                messages.append(error.message)
            error = error.cause
    return messages


def test_a_run_without_a_stack_fails_closed_and_says_what_to_start(definitions, no_stack):
    result = dg.materialize([br_states], resources=definitions.resources, raise_on_error=False)
    assert not result.success
    messages = _configuration_errors(result)
    assert messages, [e.message for e in result.all_events if e.is_failure]
    assert all(
        "from the running stack" in m and f"no running local stack under {no_stack}" in m
        and "`mlsec up`" in m
        for m in messages
    ), messages  # fmt: skip
    assert not no_stack.exists()


def test_a_sensor_without_a_stack_fails_closed(definitions):
    context = dg.build_sensor_context(resources=definitions.resources)
    with pytest.raises(dg.DagsterResourceFunctionError) as raised:
        landing_files_sensor(context)
    cause = raised.value.__cause__
    assert isinstance(cause, ConfigurationError) and "no running local stack" in str(cause)


def test_a_run_of_the_code_location_finds_the_running_stack(supervisor, settings, superuser_dsn):
    """The code location's own resources, addresses unset, against the session stack: the run
    materializes and every audit event of it is the pipeline identity's."""
    definitions = defs()
    assert definitions.resources["lake_pipeline"].unresolved_addresses() == ["endpoint_url"]
    result = dg.materialize([br_states], resources=definitions.resources)
    assert result.success
    [materialization] = result.asset_materializations_for_node("silver__br_states")
    assert materialization.metadata["dagster/row_count"].value == 27
    with closing(psycopg2.connect(**superuser_dsn)) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT DISTINCT actor, event_type FROM audit.events WHERE run_id = %s",
            (result.run_id,),
        )
        events = set(cur.fetchall())
    assert {("pipeline", "asset.materialized"), ("pipeline", "secret.read")} <= events
    assert {actor for actor, _ in events} == {"pipeline"}
