"""A small Python SDK for the Access Broker: structured queries in, pandas DataFrames out.

    with BrokerClient("https://broker.example", get_token, tls=ClientTls.from_env()) as broker:
        df = broker.query(
            "gold/orders",
            ["order_id", "price", "customer_state"],
            filters=[("price", "gt", 10), ("customer_state", "in", ["SP", "RJ"])],
            order_by=["-price"],
        )
        df.attrs["lineage"], df.attrs["masks"]

``limit`` is the rows wanted in all (None: every row), fetched ``page_size`` rows a page.
Decimals come back exact in an Arrow decimal dtype, or as float64 with ``decimals="float"``.

The broker speaks TLS only and requires a client certificate of the platform CA: ``tls``
names the CA bundle, the certificate and its key (:class:`ClientTls`; by default read from
``MLSEC_CA_BUNDLE``, ``MLSEC_CLIENT_CERT`` and ``MLSEC_CLIENT_KEY``), and the token must be
the one issued for that certificate.

Every request carries the bearer token (a callable is asked afresh per request, so it may
refresh) and an ``X-Correlation-ID``: the one given, else a new one per call, shared by all
pages of one query. 429 and 503 are retried after ``Retry-After`` when that is within the
client's ``max_wait`` (else raised at once); every refusal raises a typed
:class:`BrokerError` (:class:`InvalidRequest`, :class:`NotAuthenticated`,
:class:`AccessDenied`, :class:`NotFound`, :class:`RateLimited`, :class:`BrokerUnavailable`)
with the broker's reason and the ids that find its audit event.

``BrokerClient(..., receipts=True)`` asks for a signed lineage receipt with every answer,
verifies it against the broker's receipt JWKS and puts it in ``df.attrs["receipt"]``; one that
does not verify raises :class:`ReceiptInvalid` (``receipts``: the offline check).

One job a module: ``transport`` (requests, retries), ``errors`` (the typed refusals),
``arguments`` (Python arguments as wire JSON), ``frames`` (answers as DataFrames),
``receipts`` (verifying lineage receipts) and ``broker`` (the API's calls).
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
from broker_api.client.errors import (
    AccessDenied,
    BrokerError,
    BrokerUnavailable,
    InvalidRequest,
    NotAuthenticated,
    NotFound,
    RateLimited,
)
from broker_api.client.frames import to_frame
from broker_api.client.receipts import ReceiptInvalid, verify_receipt
from broker_api.client.transport import MAX_RETRY_WAIT, RETRY_STATUSES, retry_delay
from mlsec_platform.serving.client import ClientTls

__all__ = [
    "MAX_RETRY_WAIT",
    "RETRY_STATUSES",
    "AccessDenied",
    "BrokerClient",
    "BrokerError",
    "BrokerUnavailable",
    "ClientTls",
    "InvalidRequest",
    "NotAuthenticated",
    "NotFound",
    "RateLimited",
    "ReceiptInvalid",
    "FilterSpec",
    "OrderSpec",
    "entity_rows",
    "jsonable",
    "normalize_filter",
    "normalize_order",
    "query_body",
    "retry_delay",
    "verify_receipt",
    "to_frame",
]
