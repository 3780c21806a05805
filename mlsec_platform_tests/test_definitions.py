"""A snapshot of the asset graph: keys, dependencies, checks, sensors and schedules change
only on purpose."""

from mlsec_platform.definitions import defs
from mlsec_platform.sources.contracts import FILE_SOURCES

RAW = {"deps": [], "checks": [], "group": "raw"}
EXPECTED_GRAPH = {
    "silver/br_states": {"deps": [], "checks": ["br_states_complete"], "group": "reference"},
    "raw/events_order_status": RAW,
    "raw/bcb_sgs_433": RAW,
    "raw/openweather_current": RAW,
    **{f"raw/{source}": RAW for source in FILE_SOURCES},
}


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
