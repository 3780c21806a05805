"""The SDK against the real broker on the test stack: ``limit`` is rows in all (``page_size``
rows a page), Retry-After is waited out or reported, never cut short, decimals come back as
numbers, and every refusal raises a typed error with the broker's reason and ids."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pytest

from broker_api.client import (
    AccessDenied,
    BrokerClient,
    BrokerError,
    BrokerUnavailable,
    InvalidRequest,
    NotAuthenticated,
    NotFound,
    RateLimited,
)
from mlsec_platform.stack.ports import PortAllocator
from mlsec_platform_tests.broker_api.conftest import FACT

COLUMNS = ["order_id", "order_item_id", "price", "customer_state"]
#: The North region's states: about 2% of the order items, some thousands of rows.
NORTH = [("customer_state", "in", ["AC", "AP", "AM", "PA", "RO", "RR", "TO"])]


def test_limit_is_rows_in_all_and_page_size_rows_a_page(broker, mint, client_tls) -> None:
    with BrokerClient(broker.url, mint("analyst_conf"), tls=client_tls) as client:
        five = client.query(FACT, COLUMNS, limit=5)
        assert len(five) == 5 and len(five.attrs["request_ids"]) == 1
        assert five.attrs["next_cursor"]  # there is more, not fetched
        some = client.query(FACT, COLUMNS, filters=NORTH, limit=250, page_size=100)
        assert len(some) == 250 and len(some.attrs["request_ids"]) == 3
        # The rest of the query, from where the frame stopped: together, every row once.
        rest = client.query(
            FACT, COLUMNS, filters=NORTH, page_size=1000, cursor=some.attrs["next_cursor"]
        )
        everything = client.query(FACT, COLUMNS, filters=NORTH, page_size=1000)
        assert len(everything) > 1000 and rest.attrs["next_cursor"] is None
        keys = ["order_id", "order_item_id"]
        both = pd.concat([some, rest])[keys]
        assert not both.duplicated().any()
        assert sorted(map(tuple, both.values)) == sorted(map(tuple, everything[keys].values))


def test_decimals_are_numbers(broker, mint, client_tls) -> None:
    with BrokerClient(broker.url, mint("analyst_conf"), tls=client_tls) as client:
        exact = client.query(FACT, COLUMNS, limit=20)
        assert isinstance(exact["price"].dtype, pd.ArrowDtype)
        assert pa.types.is_decimal(exact["price"].dtype.pyarrow_dtype)
        assert exact["price"].sum() > 0 and exact["price"].max() >= exact["price"].min()
        floats = client.query(FACT, COLUMNS, limit=20, decimals="float")
        assert floats["price"].dtype == "float64"
        assert floats["price"].tolist() == [float(v) for v in exact["price"]]
        with pytest.raises(ValueError):
            client.query(FACT, COLUMNS, limit=1, decimals="text")


def test_every_refusal_is_a_typed_error_with_the_brokers_reason_and_ids(
    broker, mint, client_tls
) -> None:
    with BrokerClient(broker.url, mint("analyst"), tls=client_tls) as client:
        with pytest.raises(NotFound) as unknown:
            client.query("gold/salaries", ["x"])
        with pytest.raises(AccessDenied) as denied:
            client.query("silver/customers", ["customer_token"], limit=1)
        with pytest.raises(InvalidRequest) as invalid:
            client.query(FACT, COLUMNS, limit=5000, page_size=5000)
    for refused, status in ((unknown, 404), (denied, 403), (invalid, 400)):
        err = refused.value
        assert isinstance(err, BrokerError) and err.status == status
        assert err.reason and err.request_id and err.decision_id
        assert err.reason in str(err) and err.request_id in str(err)
    assert invalid.value.reason == "limit 5000 is above this policy's 1000 rows per page"
    with (
        BrokerClient(broker.url, "not-a-token", tls=client_tls) as client,
        pytest.raises(NotAuthenticated) as who,
    ):
        client.datasets()
    assert who.value.status == 401 and who.value.request_id
    closed = f"https://127.0.0.1:{PortAllocator().take()}"
    with BrokerClient(closed, "t", max_retries=1, tls=client_tls) as client:
        client.sleep = lambda seconds: None
        with pytest.raises(BrokerUnavailable) as down:
            client.health()
    assert down.value.status == 503 and closed in down.value.reason


def test_retry_after_is_waited_out_or_reported(tight_broker, mint, client_tls) -> None:
    # Four requests, then one a minute: the fifth is told to come back in up to a minute.
    with BrokerClient(
        tight_broker.url, mint("probe_rate", project="probe-7"), tls=client_tls
    ) as client:
        slept: list[float] = []
        client.sleep = slept.append
        for _ in range(4):
            client.datasets()
        with pytest.raises(RateLimited) as limited:
            client.datasets()  # more than the client waits: reported at once, not retried
        assert slept == [] and 30 < limited.value.retry_after <= 60
        assert limited.value.reason == "rate limit reached" and limited.value.request_id
        client.max_wait = 120.0
        with pytest.raises(RateLimited):
            client.datasets()
    # It waited as long as it was told each time (the fake sleep returns at once, so the
    # broker says so again), and gave up after its retries.
    assert len(slept) == client.max_retries and all(30 < s <= 60 for s in slept)
