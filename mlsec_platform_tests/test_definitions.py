"""A snapshot of the asset graph: keys, dependencies and checks change only on purpose."""

from mlsec_platform.definitions import defs

EXPECTED_GRAPH = {
    "silver/br_states": {"deps": [], "checks": ["br_states_complete"], "group": "reference"},
}


def test_asset_graph_snapshot(supervisor):
    graph = defs().resolve_asset_graph()
    snapshot = {}
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        snapshot[key.to_user_string()] = {
            "deps": sorted(k.to_user_string() for k in node.parent_keys),
            "checks": sorted(c.name for c in node.check_keys),
            "group": node.group_name,
        }
    assert snapshot == EXPECTED_GRAPH


def test_every_asset_has_a_docstring_and_code_version(supervisor):
    definitions = defs()
    graph = definitions.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        assert node.description, f"{key.to_user_string()} needs a docstring (shown in the UI)"
        assert node.code_version, f"{key.to_user_string()} needs a code_version"
