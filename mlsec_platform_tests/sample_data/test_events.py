"""The ``order_status`` event stream of a generated data set: contract, ids, order, replay."""

from __future__ import annotations

import hashlib
import json
import re
import uuid

import pytest

from mlsec_platform.catalog.sources import EVENT_DOMAINS
from mlsec_platform.sample_data import events as ev
from mlsec_platform.sample_data import olist as og
from mlsec_platform.sample_data import vocab
from mlsec_platform_tests.sample_data.conftest import ORDERS, SEED

JSON_TYPES = {str: "string", type(None): "null"}


def test_events_match_the_contract(dataset):
    contract = EVENT_DOMAINS["order_status"]
    events = list(ev.order_status_events(dataset))
    assert len(events) == ev.count_order_status_events(dataset)
    assert 3.0 * ORDERS < len(events) < 4.0 * ORDERS
    iso = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
    statuses = {s for s, _ in vocab.ORDER_STATUSES}
    for event in events:
        assert list(event) == list(contract.fields)
        assert contract.required <= {k for k, v in event.items() if v is not None}
        for key, value in event.items():
            assert isinstance(value, contract.fields[key]), (key, value)
        assert event["event_type"] in ev.EVENT_TYPES
        assert event["status"] in statuses
        assert iso.match(event["occurred_at"])
        if event["event_type"] in ("order_shipped", "order_delivered"):
            assert event["seller_id"] is not None
        else:
            assert event["seller_id"] is None
        assert uuid.UUID(event["event_id"]).version == 5
    # JSON-serializable with the contract's JSON types
    decoded = json.loads(json.dumps(events[:50]))
    assert decoded == events[:50]


def test_event_ids_are_unique_and_stable(dataset):
    first = list(ev.order_status_events(dataset))
    second = list(ev.order_status_events(og.generate(seed=SEED, orders=ORDERS)))
    assert first == second
    ids = [e["event_id"] for e in first]
    assert len(set(ids)) == len(ids)
    sample = first[123]
    assert sample["event_id"] == ev.event_uuid(SEED, sample["order_id"], sample["event_type"])
    other = ev.take_events(og.generate(seed=SEED + 1, orders=ORDERS), 100)
    assert not {e["event_id"] for e in other} & set(ids)


def test_events_replay_to_the_order_status(dataset):
    orders = {o["order_id"]: o for o in dataset.tables["olist_orders"].to_pylist()}
    items = {
        i["order_id"]: i["seller_id"]
        for i in dataset.tables["olist_order_items"].to_pylist()
        if i["order_item_id"] == "1"
    }
    last_status: dict[str, str] = {}
    previous = ""
    for event in ev.order_status_events(dataset):
        assert event["occurred_at"] >= previous, "events come in time order"
        previous = event["occurred_at"]
        order = orders[event["order_id"]]
        assert event["customer_id"] == order["customer_id"]
        if event["seller_id"] is not None:
            assert event["seller_id"] == items[event["order_id"]]
        if event["event_type"] == "order_created":
            assert event["occurred_at"].replace("T", " ")[:-1] == order["order_purchase_timestamp"]
            assert event["order_id"] not in last_status
        last_status[event["order_id"]] = event["status"]
    assert last_status == {k: o["order_status"] for k, o in orders.items()}


def test_take_events(dataset):
    events = ev.take_events(dataset, 1_000)
    assert len(events) == 1_000
    assert events == list(ev.order_status_events(dataset))[:1_000]
    with pytest.raises(ValueError):
        ev.take_events(og.generate(seed=1, orders=5), 1_000)


def test_hundred_thousand_events(big):
    events = ev.take_events(big, 100_000)
    assert len({e["event_id"] for e in events}) == 100_000


def test_fast_uuid5_equals_the_standard_library():
    for order_id in ("a" * 32, "0123456789abcdef0123456789abcdef"):
        for event_type in ev.EVENT_TYPES:
            name = f"{SEED}/{order_id}/{event_type}"
            expected = str(uuid.uuid5(ev._EVENT_NAMESPACE, name))
            data = ev._EVENT_NAMESPACE.bytes + name.encode()
            digest = hashlib.sha1(data, usedforsecurity=False)
            assert ev._uuid5_text(digest.digest()) == expected
            assert ev.event_uuid(SEED, order_id, event_type) == expected
