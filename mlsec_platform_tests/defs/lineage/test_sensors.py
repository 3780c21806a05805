"""OpenLineage of every materialization, from the instance's event log: the session's curated
run (Silver, Gold, warehouse, features on the stack's Postgres instance) reaches a real HTTP
receiver and the file transport with each asset's Delta version, inputs and column lineage; a
receiver that is down leaves the cursor where it was; a failed run's unmaterialized assets end
in FAIL (on an ephemeral instance with assets of its own)."""

from __future__ import annotations

import json
import socket

import dagster as dg
import pytest

from mlsec_platform.defs.lineage.sensors import openlineage_sensor
from mlsec_platform.settings import PlatformSettings
from mlsec_platform.telemetry.datasets import Datasets
from mlsec_platform.telemetry.lineage import LineageEmitter, transport_from_settings
from mlsec_platform.telemetry.runs import LineageCursor, publish_lineage
from mlsec_platform_tests.telemetry.receiver import LineageReceiver

DATASETS = Datasets("mlsec-", "127.0.0.1:5432", "warehouse")


def _by_job(events: list[dict]) -> dict[str, list[dict]]:
    jobs: dict[str, list[dict]] = {}
    for event in events:
        jobs.setdefault(event["job"]["name"], []).append(event)
    return jobs


def test_the_curated_run_reaches_a_receiver(curated) -> None:
    instance = curated.instance
    materialized = instance.fetch_materializations(dg.AssetKey(["silver", "customers"]), limit=1)
    version = materialized.records[0].asset_materialization.metadata["delta_version"].value
    with LineageReceiver() as receiver:
        emitter = LineageEmitter(
            transport_from_settings(PlatformSettings(openlineage_url=receiver.url))
        )
        cursor = LineageCursor()
        published = publish_lineage(instance, cursor, emitter.send, DATASETS, limit=1000)
        events = list(receiver.events)
    assert published >= 2 and cursor.after["RUN_START"] and cursor.after["RUN_SUCCESS"]
    jobs = _by_job(events)
    assert [e["eventType"] for e in jobs["curated"]][:1] == ["START"]
    assert "COMPLETE" in [e["eventType"] for e in jobs["curated"]]
    customers = [e for e in jobs["silver/customers"] if e["eventType"] == "COMPLETE"][-1]
    (output,) = customers["outputs"]
    assert (output["namespace"], output["name"]) == ("s3://mlsec-silver", "customers")
    assert output["facets"]["version"]["datasetVersion"] == str(version)
    assert {i["name"] for i in customers["inputs"]} >= {"olist_customers"}
    lineage = output["facets"]["columnLineage"]["fields"]
    assert lineage["cpf_token"]["inputFields"][0]["field"] == "customer_cpf"
    parent = customers["run"]["facets"]["parent"]
    assert parent["job"]["name"] == "curated"
    # The warehouse load: a Postgres table, with the Delta version it copied as its input.
    load = [e for e in jobs["warehouse/dim_customer"] if e["eventType"] == "COMPLETE"][-1]
    assert load["outputs"][0]["name"] == "warehouse.gold.dim_customer"
    assert load["outputs"][0]["namespace"].startswith("postgres://")
    (source,) = load["inputs"]
    assert source["name"] == "dim_customer" and source["facets"]["version"]["datasetVersion"]
    # Nothing new: the next call sends nothing.
    assert publish_lineage(instance, cursor, emitter.send, DATASETS) == 0


def test_the_sensor_writes_the_file_and_keeps_its_cursor_while_the_receiver_is_down(
    curated, settings, tmp_path, monkeypatch
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        down = f"http://127.0.0.1:{s.getsockname()[1]}"
    monkeypatch.setenv("MLSEC_OPENLINEAGE_URL", down)
    context = dg.build_sensor_context(instance=curated.instance)
    result = openlineage_sensor(context)
    assert "sent again next tick" in result.skip_message
    assert not context.cursor or "RUN_START" not in context.cursor
    monkeypatch.delenv("MLSEC_OPENLINEAGE_URL")
    path = tmp_path / "lineage.jsonl"
    monkeypatch.setenv("MLSEC_OPENLINEAGE_FILE", str(path))
    context = dg.build_sensor_context(instance=curated.instance)
    openlineage_sensor(context)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert any(e["job"]["name"] == "gold/fact_order_item" for e in lines)
    assert "RUN_SUCCESS" in context.cursor
    size = path.stat().st_size
    again = dg.build_sensor_context(instance=curated.instance, cursor=context.cursor)
    openlineage_sensor(again)
    assert path.stat().st_size == size  # nothing sent twice


def test_lineage_off_skips() -> None:
    with dg.instance_for_test() as instance:
        result = openlineage_sensor(dg.build_sensor_context(instance=instance))
    assert "OpenLineage is off" in result.skip_message


@dg.asset(key=["raw", "olist_customers"])
def raw_customers() -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"delta_version": 4})


@dg.asset(key=["silver", "customers"], deps=[raw_customers])
def silver_customers() -> None:
    raise RuntimeError("gate failed")


def test_a_failed_run_ends_its_unmaterialized_assets_in_fail() -> None:
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [raw_customers, silver_customers], instance=instance, raise_on_error=False
        )
        assert not result.success
        sent: list = []
        publish_lineage(instance, LineageCursor(), lambda e: sent.append(e) or True, DATASETS)
    states = {(e.job.name, e.eventType.value) for e in sent}
    assert ("raw/olist_customers", "COMPLETE") in states
    assert ("silver/customers", "FAIL") in states
    assert ("__ephemeral_asset_job__", "FAIL") in states
    raw = next(e for e in sent if e.job.name == "raw/olist_customers" and e.outputs)
    assert raw.outputs[0].facets["version"].datasetVersion == "4"
    assert [f.name for f in raw.outputs[0].facets["schema"].fields][:2] == [
        "customer_id",
        "customer_unique_id",
    ]


@pytest.mark.parametrize("text", ["", "RUN_START=5,RUN_SUCCESS=9"])
def test_the_cursor_round_trips(text) -> None:
    assert str(LineageCursor.parse(text)) == text
