"""Each answered request leaves one JSON log line (ids, subject, decision, status, latency;
never its token or values) and, for a read, an OpenLineage run to the configured receiver; a
receiver that is down changes no answer. (The app over stub services, as test_app.py.)"""

from __future__ import annotations

import io
import json
import logging
import socket

import pytest

from broker_api.observed import ObservedRequests
from mlsec_platform.settings import PlatformSettings
from mlsec_platform.telemetry.datasets import Datasets
from mlsec_platform.telemetry.lineage import LineageEmitter, transport_from_settings
from mlsec_platform.telemetry.request_log import FIELDS, RequestLog
from mlsec_platform_tests.broker_api.test_app import PAGE, ask
from mlsec_platform_tests.broker_api.test_app import broker as broker  # noqa: F401 - fixture
from mlsec_platform_tests.telemetry.receiver import LineageReceiver

FILTERED = {**PAGE, "filters": [{"column": "price", "op": "gt", "value": 123.45}]}


def observe(services, url: str) -> io.StringIO:
    """Point the stub broker's request lines at a buffer and its lineage at ``url``."""
    stream = io.StringIO()
    logger = logging.getLogger(f"test-requests-{id(stream)}")
    logger.addHandler(logging.StreamHandler(stream))
    logger.setLevel(logging.INFO)
    logger.propagate = False
    emitter = LineageEmitter(
        transport_from_settings(PlatformSettings(openlineage_url=url)),
        registry=services.metrics.registry,
    )
    services.observed = ObservedRequests(
        services.metrics,
        RequestLog("broker", logger),
        emitter,
        Datasets("mlsec-", "127.0.0.1:5432", "warehouse"),
    )
    return stream


def test_one_line_per_request_and_a_lineage_run_per_read(broker) -> None:  # noqa: F811
    services, app = broker
    with LineageReceiver() as receiver:
        stream = observe(services, receiver.url)
        ok, denied, unknown = ask(
            app,
            ("POST", "/query", "analyst", FILTERED),
            ("POST", "/query", "stranger", PAGE),
            ("GET", "/nowhere", None, None),
        )
        events = receiver.wait_for(4)
        services.observed.lineage.close()
    assert (ok.status_code, denied.status_code, unknown.status_code) == (200, 403, 404)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert len(lines) == 3
    assert set().union(*lines) <= {"ts", "service", *FIELDS}
    first = lines[0]
    assert first["request_id"] == ok.headers["x-request-id"]
    assert (first["route"], first["status"], first["decision"]) == ("/query", 200, "allowed")
    assert first["subject"] == "ana" and first["dataset"] == PAGE["dataset"]
    assert first["latency_ms"] > 0 and first["decision_id"]
    assert (lines[1]["status"], lines[1]["decision"], lines[1]["subject"]) == (403, "denied", "eve")
    assert (lines[2]["route"], lines[2]["status"]) == ("other", 404)
    # Never the token (the stub's tokens are the people's kinds) nor a filter's value.
    text = stream.getvalue()
    assert "analyst" not in text and "stranger" not in text and "123.45" not in text

    by_run = {}
    for event in events:
        by_run.setdefault(event["run"]["runId"], []).append(event["eventType"])
    assert sorted(by_run.values()) == [["START", "COMPLETE"], ["START", "FAIL"]]
    complete = next(e for e in events if e["eventType"] == "COMPLETE")
    assert complete["job"] == {"namespace": "mlsec-broker", "name": "broker.query", "facets": {}}
    (read,) = complete["inputs"]
    assert (read["namespace"], read["name"]) == ("s3://mlsec-gold", "fact_order_item")
    assert read["facets"]["version"]["datasetVersion"] == "3"  # the pinned snapshot
    assert [f["name"] for f in read["facets"]["schema"]["fields"]] == ["order_id", "price"]
    facet = complete["run"]["facets"]["mlsec_request"]
    assert facet["requestId"] == ok.headers["x-request-id"] and facet["status"] == 200
    assert "123.45" not in json.dumps(events)


def test_a_receiver_that_is_down_changes_no_answer(broker) -> None:  # noqa: F811
    services, app = broker
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}"
    observe(services, url)
    responses = ask(app, *[("POST", "/query", "analyst", PAGE)] * 3)
    assert [r.status_code for r in responses] == [200] * 3
    emitter = services.observed.lineage
    assert emitter.flush(10)
    assert emitter.count("failed") == 6
    body, _ = services.metrics.render()
    assert b'openlineage_events_total{outcome="failed"} 6.0' in body
    emitter.close()


@pytest.mark.parametrize("status", [200, 403])
def test_lineage_off_emits_nothing(broker, status) -> None:  # noqa: F811
    services, app = broker
    who = "analyst" if status == 200 else "stranger"
    (response,) = ask(app, ("POST", "/query", who, PAGE))
    assert response.status_code == status
    assert not services.observed.lineage.enabled
