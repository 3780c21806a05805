"""A small Python SDK for the Access Broker: structured queries in, pandas DataFrames out.

    with BrokerClient("https://broker.example", token=get_token) as broker:
        df = broker.query(
            "gold/orders",
            ["order_id", "price", "customer_state"],
            filters=[("price", "gt", 10), ("customer_state", "in", ["SP", "RJ"])],
            order_by=["-price"],
        )
        df.attrs["lineage"], df.attrs["masks"]

Every request carries the bearer token (a callable is asked afresh per request, so it may
refresh) and an ``X-Correlation-ID``: the one given, else a new one per call, shared by all
pages of one query. 429 and 503 are retried after ``Retry-After``; any other refusal raises
:class:`BrokerError` with the ids that find its audit event.

One job a module: ``transport`` (requests, retries, errors), ``arguments`` (Python arguments
as wire JSON), ``frames`` (answers as DataFrames) and ``broker`` (the API's calls).
"""

from broker_api.client.arguments import (
    FilterSpec,
    OrderSpec,
    entity_rows,
    jsonable,
    normalize_filter,
    normalize_order,
    query_body,
)
from broker_api.client.broker import BrokerClient
from broker_api.client.frames import to_frame
from broker_api.client.transport import MAX_RETRY_WAIT, RETRY_STATUSES, BrokerError, retry_delay

__all__ = [
    "MAX_RETRY_WAIT",
    "RETRY_STATUSES",
    "BrokerClient",
    "BrokerError",
    "FilterSpec",
    "OrderSpec",
    "entity_rows",
    "jsonable",
    "normalize_filter",
    "normalize_order",
    "query_body",
    "retry_delay",
    "to_frame",
]
