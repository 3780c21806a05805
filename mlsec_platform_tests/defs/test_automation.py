"""Declarative automation: new Raw data flows to Silver, Gold, the warehouse and the features
with no one launching `curated`. A tick requests the changed Silver table together with
everything below it that can be built (Dagster counts a dependency requested in the same tick
as updated), so one run carries a batch all the way down. Evaluated by Dagster's own
condition evaluator over the whole graph, as the daemon sees it."""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg
import pytest

from mlsec_platform.definitions import defs

RAW_ORDERS = dg.AssetKey(["raw", "olist_orders"])


@pytest.fixture
def graph(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dg.Definitions:
    for name in [n for n in os.environ if n.startswith("MLSEC_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("MLSEC_STATE_DIR", str(tmp_path / ".mlsec"))
    return defs()


class Ticks:
    """The automation sensor's successive evaluations against one instance."""

    def __init__(self, definitions: dg.Definitions, instance: dg.DagsterInstance) -> None:
        self.definitions, self.instance, self.cursor = definitions, instance, None
        self.graph = definitions.resolve_asset_graph()

    def requested(self) -> set[str]:
        result = dg.evaluate_automation_conditions(
            defs=self.definitions, instance=self.instance, cursor=self.cursor
        )
        self.cursor = result.cursor
        return {
            key.to_user_string()
            for key in self.graph.get_all_asset_keys()
            if self.graph.get(key).is_materializable and result.get_num_requested(key)
        }

    def materialize(self, *keys: str, partition: str | None = None) -> None:
        for key in keys:
            self.instance.report_runless_asset_event(
                dg.AssetMaterialization(dg.AssetKey.from_user_string(key), partition=partition)
            )

    def settle(self) -> list[set[str]]:
        """Tick and run what each tick requests until a tick requests nothing; the waves."""
        waves = []
        while wave := self.requested():
            assert len(waves) < 10, f"automation does not settle: {waves}"
            waves.append(wave)
            self.materialize(*wave)
        return waves

    def raw_batch(self, key: dg.AssetKey, batch: str) -> None:
        partitions = self.graph.get(key).partitions_def
        self.instance.add_dynamic_partitions(partitions.name, [batch])
        self.materialize(key.to_user_string(), partition=batch)


def test_a_raw_batch_flows_down_to_the_features_step_by_step(graph):
    with dg.DagsterInstance.ephemeral() as instance:
        ticks = Ticks(graph, instance)
        # An empty lake starts nothing.
        assert ticks.requested() == set()
        assert ticks.requested() == set()
        ticks.raw_batch(RAW_ORDERS, "batch-1")
        # One run: orders, and what needs only orders; what also needs Silver tables that were
        # never built waits for them.
        assert ticks.settle() == [{"silver/orders", "gold/dim_date", "warehouse/dim_date"}]


def test_a_new_batch_runs_the_graph_below_it_once(graph):
    with dg.DagsterInstance.ephemeral() as instance:
        ticks = Ticks(graph, instance)
        ticks.requested()
        curated = [
            key.to_user_string()
            for key in ticks.graph.get_all_asset_keys()
            if ticks.graph.get(key).is_materializable
            and ticks.graph.get(key).group_name in ("silver", "gold", "warehouse", "features")
        ]
        ticks.materialize(*curated)  # a first `curated` run built everything
        ticks.settle()
        ticks.raw_batch(RAW_ORDERS, "batch-2")
        waves = ticks.settle()
        assert len(waves) == 1, waves  # one run down the graph, nothing requested twice
        seen = waves[0]
        assert {
            "silver/orders",
            "gold/fact_order_item",
            "warehouse/fact_order_item",
            "features/customer_rfm",
            "warehouse/customer_rfm_online",
        } <= seen
        assert "silver/customers" not in seen  # its Raw did not change


def test_a_refused_raw_batch_does_not_hold_silver_back(graph):
    """A quarantined batch leaves its Raw partition missing for good; later batches flow."""
    with dg.DagsterInstance.ephemeral() as instance:
        ticks = Ticks(graph, instance)
        ticks.requested()
        partitions = ticks.graph.get(RAW_ORDERS).partitions_def
        instance.add_dynamic_partitions(partitions.name, ["refused"])
        ticks.raw_batch(RAW_ORDERS, "accepted")
        assert "silver/orders" in ticks.requested()


def test_gold_and_features_carry_freshness_policies(graph):
    asset_graph = graph.resolve_asset_graph()
    for key in ("gold/fact_order_item", "features/customer_rfm"):
        assert asset_graph.get(dg.AssetKey.from_user_string(key)).freshness_policy is not None


def test_an_event_batch_reaches_the_online_store_in_one_run(graph):
    """Order events flow to the feature group the broker serves them from, in one wave."""
    events = dg.AssetKey(["raw", "events_order_status"])
    with dg.DagsterInstance.ephemeral() as instance:
        ticks = Ticks(graph, instance)
        ticks.requested()
        built = [
            key.to_user_string()
            for key in ticks.graph.get_all_asset_keys()
            if ticks.graph.get(key).is_materializable
            and ticks.graph.get(key).group_name in ("silver", "gold", "warehouse", "features")
        ]
        ticks.materialize(*built)
        ticks.settle()
        ticks.raw_batch(events, "events-1")
        [wave] = ticks.settle()
        assert {
            "silver/order_events",
            "features/customer_order_status",
            "warehouse/customer_order_status_online",
        } <= wave
        # Nothing the events do not feed: the order facts and the RFM features stay.
        assert not {"gold/fact_order_item", "features/customer_rfm"} & wave


def test_a_raw_batch_committed_while_silver_was_written_gets_a_run_of_its_own(graph):
    """Silver requested, then a Raw batch commits while that run writes Silver: the Silver
    commit that follows did not read the batch, so it must not count as having handled it
    (``eager`` alone counts any update of the asset as handling every earlier change)."""
    events = dg.AssetKey(["raw", "events_order_status"])
    with dg.DagsterInstance.ephemeral() as instance:
        ticks = Ticks(graph, instance)
        ticks.requested()
        ticks.raw_batch(events, "events-1")
        assert "silver/order_events" in ticks.requested()
        # The next tick comes while the run starts (a batch committed before it is read).
        assert "silver/order_events" not in ticks.requested()
        ticks.raw_batch(events, "events-2")  # lands while the run is writing Silver ...
        ticks.materialize("silver/order_events")  # ... which commits without it
        assert "silver/order_events" in ticks.requested()
        ticks.materialize("silver/order_events")
        assert "silver/order_events" not in ticks.requested()  # handled once, not again
