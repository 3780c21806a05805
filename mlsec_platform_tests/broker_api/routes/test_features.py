"""/feature/vector and /feature/historical over real HTTP: the online store under the
caller's row scope, and point-in-time correct values."""

from __future__ import annotations

from datetime import datetime, timedelta

from mlsec_platform_tests.broker_api.conftest import bearer, post_query


def _tokens(http, mint, n: int) -> list[str]:
    rows = post_query(
        http,
        mint("analyst_conf"),
        dataset="gold/dim_customer",
        columns=["customer_token"],
        limit=n,
        filters=[{"column": "orders", "op": "gte", "value": 2}],
    ).json()["rows"]
    return [r["customer_token"] for r in rows]


def test_feature_vector_reads_the_online_store(http, mint) -> None:
    tokens = _tokens(http, mint, 3)
    params = {"group": "customer_rfm", "entity": [*tokens, "tok_nobody"]}
    response = http.get("/feature/vector", params=params, headers=bearer(mint("analyst_conf")))
    assert response.status_code == 200, response.text
    body = response.json()
    assert {v["customer_token"] for v in body["vectors"]} == set(tokens)
    assert body["missing"] == ["tok_nobody"]
    assert body["group_version"] == "customer_rfm:v1"
    assert body["freshness"]["age_seconds"] >= 0
    assert body["lineage"]["asset_key"] == "features/customer_rfm"
    # Below the clearance of the entity key, lookups by it are refused (no probing).
    masked = http.get("/feature/vector", params=params, headers=bearer(mint("analyst")))
    assert masked.status_code == 403


def test_feature_vector_respects_project_scope_in_the_warehouse(http, mint) -> None:
    tokens = _tokens(http, mint, 200)
    everyone = http.get(
        "/feature/vector",
        params={"group": "customer_rfm", "entity": tokens[:100]},
        headers=bearer(mint("analyst_conf")),
    ).json()
    sp = http.get(
        "/feature/vector",
        params={"group": "customer_rfm", "entity": tokens[:100]},
        headers=bearer(mint("analyst_sp")),
    ).json()
    assert {v["customer_state"] for v in sp["vectors"]} <= {"SP"}
    assert len(sp["vectors"]) == sum(v["customer_state"] == "SP" for v in everyone["vectors"])


def test_historical_is_point_in_time_correct(http, mint, curated) -> None:
    token = mint("analyst_conf")
    # A customer with feature rows in at least two months (tokens, and so the order of
    # customers, differ from stack to stack: look for one rather than take the first).
    for customer in _tokens(http, mint, 50):
        history = post_query(
            http,
            token,
            dataset="features/customer_rfm",
            columns=["event_timestamp", "frequency", "monetary"],
            filters=[{"column": "customer_token", "op": "eq", "value": customer}],
            order_by=[{"column": "event_timestamp"}],
        ).json()["rows"]
        if len(history) >= 2:
            break
    assert len(history) >= 2
    first = datetime.fromisoformat(history[0]["event_timestamp"])
    second = datetime.fromisoformat(history[1]["event_timestamp"])
    asks = [first - timedelta(days=1), first, second - timedelta(seconds=1), second]
    response = http.post(
        "/feature/historical",
        headers=bearer(token),
        json={
            "group": "customer_rfm",
            "features": ["frequency", "monetary"],
            "entities": [
                {"customer_token": customer, "event_timestamp": a.isoformat()} for a in asks
            ],
        },
    )
    assert response.status_code == 200, response.text
    rows = response.json()["rows"]
    assert rows[0]["frequency"] is None  # nothing known yet
    assert [r["frequency"] for r in rows[1:]] == [
        history[0]["frequency"],
        history[0]["frequency"],
        history[1]["frequency"],
    ]


def test_feature_groups_are_the_catalogs_and_the_warehouse_loads_their_online_tables() -> None:
    """The broker keeps no list of its own: a feature group's dataset, entity and online table
    are the catalog's, and the warehouse loads that table keyed by that entity."""
    from broker_api.routes.features import feature_dataset
    from mlsec_platform.catalog.datasets import FEATURE_GROUPS
    from mlsec_platform.defs.warehouse.assets import TARGETS

    loaded = {(t.source.id, t.schema, t.name, t.index) for t in TARGETS}
    assert FEATURE_GROUPS
    for name, spec in FEATURE_GROUPS.items():
        assert feature_dataset(name) == (spec, spec.feature_group)
        group = spec.feature_group
        assert group.name == name and group.entity in spec.key
        assert (spec.id, group.online_schema, group.online_name, (group.entity,)) in loaded
