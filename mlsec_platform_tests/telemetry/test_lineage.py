"""The OpenLineage emitter against a real HTTP receiver and the file transport: events arrive
as the spec's JSON, a receiver that is down or slow never blocks the caller (failures and drops
are counted), and datasets carry the catalog's schema, Delta version and column lineage."""

from __future__ import annotations

import json
import socket
import time

from openlineage.client.event_v2 import RunState

from mlsec_platform.settings import PlatformSettings
from mlsec_platform.telemetry.datasets import Datasets
from mlsec_platform.telemetry.lineage import (
    LineageEmitter,
    run_event,
    run_id,
    transport_from_settings,
)
from mlsec_platform_tests.telemetry.receiver import LineageReceiver

DATASETS = Datasets("mlsec-", "127.0.0.1:5432", "warehouse")


def _write(asset: str = "silver/customers", version: int = 7):
    run = run_id("dagster-run", asset)
    output = DATASETS.output(asset, version, inputs=["raw/olist_customers"])
    return [
        run_event(RunState.START, run=run, job=("mlsec-pipeline", asset)),
        run_event(RunState.COMPLETE, run=run, job=("mlsec-pipeline", asset), outputs=[output]),
    ]


def test_events_reach_an_http_receiver() -> None:
    with LineageReceiver() as receiver:
        settings = PlatformSettings(openlineage_url=receiver.url)
        emitter = LineageEmitter(transport_from_settings(settings))
        emitter.emit(*_write())
        start, complete = receiver.wait_for(2)
        emitter.close()
    assert receiver.paths == ["/api/v1/lineage"] * 2
    assert [start["eventType"], complete["eventType"]] == ["START", "COMPLETE"]
    assert start["run"]["runId"] == complete["run"]["runId"]
    (output,) = complete["outputs"]
    assert (output["namespace"], output["name"]) == ("s3://mlsec-silver", "customers")
    facets = output["facets"]
    assert facets["version"]["datasetVersion"] == "7"
    assert facets["deltaTable"]["version"] == 7
    names = [f["name"] for f in facets["schema"]["fields"]]
    assert "email_token" in names and "customer_email" not in names
    # Where a column comes from, as the catalog says: a token made from a Raw column.
    email = facets["columnLineage"]["fields"]["email_token"]
    assert email["transformationType"] == "MASKED"
    (field,) = email["inputFields"]
    assert (field["namespace"], field["name"], field["field"]) == (
        "s3://mlsec-raw",
        "olist_customers",
        "customer_email",
    )
    assert field["transformations"] == [
        {"type": "DIRECT", "subtype": "TRANSFORMATION", "masking": True}
    ]
    state = facets["columnLineage"]["fields"]["customer_state"]
    assert state["transformationType"] == "IDENTITY"
    assert emitter.count("sent") == 2 and emitter.count("failed") == 0


def test_events_are_appended_to_the_file(tmp_path) -> None:
    path = tmp_path / "lineage" / "events.jsonl"
    emitter = LineageEmitter(transport_from_settings(PlatformSettings(openlineage_file=path)))
    emitter.emit(*_write())
    emitter.emit(*_write("gold/dim_customer", 3))
    emitter.close()
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [e["eventType"] for e in lines] == ["START", "COMPLETE"] * 2
    assert lines[3]["outputs"][0]["name"] == "dim_customer"
    assert lines[3]["outputs"][0]["facets"]["version"]["datasetVersion"] == "3"


def test_lineage_is_off_unless_configured() -> None:
    assert transport_from_settings(PlatformSettings()) is None
    emitter = LineageEmitter(None)
    emitter.emit(*_write())  # nothing to send, nothing counted
    assert not emitter.enabled and emitter.count("dropped") == 0


def test_a_receiver_that_is_down_costs_the_caller_nothing() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}"
    emitter = LineageEmitter(transport_from_settings(PlatformSettings(openlineage_url=url)))
    started = time.perf_counter()
    emitter.emit(*_write())
    assert time.perf_counter() - started < 0.05
    assert emitter.flush(10)
    assert emitter.count("failed") == 2 and emitter.count("sent") == 0
    emitter.close()


def test_a_slow_receiver_fills_the_queue_and_events_are_dropped_not_waited_for() -> None:
    with LineageReceiver(delay_seconds=0.5) as receiver:
        emitter = LineageEmitter(
            transport_from_settings(PlatformSettings(openlineage_url=receiver.url)), capacity=2
        )
        started = time.perf_counter()
        for _ in range(5):
            emitter.emit(*_write())  # 10 events: one in flight, two queued, the rest dropped
        assert time.perf_counter() - started < 0.1
        assert emitter.count("dropped") >= 7
        emitter.close(10)
    assert emitter.count("sent") + emitter.count("dropped") == 10
