"""The broker's Prometheus metrics, on a registry of its own (never the process-global one).

Label values must come from bounded sets (route templates, catalog dataset ids, fixed reason
kinds), never from request data, so the number of series stays small. They are served only to
a scraper that sends the scrape credential (:class:`ScrapeCredential`).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from broker_api.errors import RequestRefused, Unauthenticated
from mlsec_platform.serving.scrape import CONTENT_TYPE
from mlsec_platform.serving.scrape import ScrapeCredential as _Credential

#: Request latency buckets, seconds: 0.5 ms to 10 s.
LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)


class BrokerMetrics:
    """Counters, latency histograms and the audit queue gauge of one broker process.

    Metric names carry ``namespace`` as a prefix (``broker_requests_total`` and so on).
    """

    def __init__(self, namespace: str = "broker") -> None:
        self.registry = CollectorRegistry()
        reg, ns = self.registry, namespace
        self.requests_total = Counter(
            "requests", "Requests answered.", ["endpoint", "status"], namespace=ns, registry=reg
        )
        self.request_seconds = Histogram(
            "request_seconds",
            "Time to answer a request.",
            ["endpoint"],
            namespace=ns,
            registry=reg,
            buckets=LATENCY_BUCKETS,
        )
        self.rows_returned_total = Counter(
            "rows_returned", "Rows returned.", ["dataset"], namespace=ns, registry=reg
        )
        self.bytes_returned_total = Counter(
            "bytes_returned", "Bytes of row data returned.", ["dataset"], namespace=ns, registry=reg
        )
        self.denied_total = Counter(
            "denied", "Requests refused by policy.", ["reason_kind"], namespace=ns, registry=reg
        )
        self.rate_limited_total = Counter(
            "rate_limited",
            "Requests refused by a rate, concurrency or quota limit.",
            ["kind"],
            namespace=ns,
            registry=reg,
        )
        self.audit_queue_depth = Gauge(
            "audit_queue_depth", "Audit events waiting to be written.", namespace=ns, registry=reg
        )
        self.audit_failures_total = Counter(
            "audit_failures", "Audit events that could not be written.", namespace=ns, registry=reg
        )
        self.audit_commit_seconds = Histogram(
            "audit_commit_seconds",
            "Time from sending an audit INSERT to its commit (every request waits for one).",
            namespace=ns,
            registry=reg,
            buckets=LATENCY_BUCKETS,
        )

    def observe_request(self, endpoint: str, status: int, seconds: float) -> None:
        """Count one answered request and its latency (``endpoint``: the route template)."""
        self.requests_total.labels(endpoint=endpoint, status=str(status)).inc()
        self.request_seconds.labels(endpoint=endpoint).observe(seconds)

    def returned(self, dataset: str, rows: int, nbytes: int) -> None:
        """Count the rows and bytes one response carried from ``dataset``."""
        self.rows_returned_total.labels(dataset=dataset).inc(rows)
        self.bytes_returned_total.labels(dataset=dataset).inc(nbytes)

    def deny(self, reason_kind: str) -> None:
        """Count a policy refusal of kind ``reason_kind`` (e.g. ``purpose``, ``clearance``)."""
        self.denied_total.labels(reason_kind=reason_kind).inc()

    def limit(self, kind: str) -> None:
        """Count a refusal by a limit of kind ``kind`` (e.g. ``rate``, ``concurrency``)."""
        self.rate_limited_total.labels(kind=kind).inc()

    def render(self) -> tuple[bytes, str]:
        """The metrics in Prometheus text format, and the content type to serve them with."""
        return generate_latest(self.registry), CONTENT_TYPE


class ScrapeCredential(_Credential):
    """The broker's scrape credential (``MLSEC_BROKER_METRICS_CREDENTIAL_FILE``): a request
    without it is refused with the broker's own refusals."""

    setting = "MLSEC_BROKER_METRICS_CREDENTIAL_FILE"

    def check(self, authorization: str | None) -> None:
        """Pass a request that carries the credential; refuse any other (403 when the broker
        has none configured, else 401)."""
        refusal = self.refusal(authorization)
        if refusal is None:
            return
        status, reason = refusal
        raise Unauthenticated(reason) if status == 401 else RequestRefused(reason, status=status)
