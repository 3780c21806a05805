"""What the gateway tells operators about each request once its answer has left: Prometheus
metrics (requests, bytes received, refusals, latency) on a registry of its own, served at
``/metrics`` to the scraper holding the credential, and one JSON log line
(``mlsec_platform.telemetry.request_log``).

Labels come from bounded sets only: the route template (``/v1/files/{source}``, never the
path as sent), the status, and the source or domain when it is one the catalog knows.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram

from mlsec_platform.catalog.sources import EVENT_DOMAINS, FILE_SOURCES
from mlsec_platform.serving.scrape import MetricsScrapeCredential
from mlsec_platform.settings import PlatformSettings
from mlsec_platform.telemetry.request_log import RequestLog, decision

#: Request latency buckets, seconds: 1 ms to 5 min (an upload may take minutes).
LATENCY_BUCKETS = (0.001, 0.005, 0.025, 0.1, 0.5, 1.0, 2.5, 10.0, 30.0, 60.0, 300.0)
_KNOWN_NAMES = frozenset(FILE_SOURCES) | frozenset(EVENT_DOMAINS)


class GatewayMetrics:
    """Counters and the latency histogram of one gateway process (``gateway_*``)."""

    def __init__(self) -> None:
        self.registry = reg = CollectorRegistry()
        ns = "gateway"
        self.requests = Counter(
            "requests", "Requests answered.", ["route", "status"], namespace=ns, registry=reg
        )
        self.received_bytes = Counter(
            "received_bytes",
            "Request body bytes received, by source or event domain.",
            ["name"],
            namespace=ns,
            registry=reg,
        )
        self.refusals = Counter(
            "refusals", "Requests refused (4xx), by status.", ["status"], namespace=ns, registry=reg
        )
        self.request_seconds = Histogram(
            "request_seconds",
            "Time to answer a request.",
            ["route"],
            namespace=ns,
            registry=reg,
            buckets=LATENCY_BUCKETS,
        )


class ObservedRequests:
    """Metrics and the log line of each answered gateway request."""

    def __init__(
        self, settings: PlatformSettings, scrape: MetricsScrapeCredential | None = None
    ) -> None:
        """``scrape``: the credential when read already (before the process switched to the
        gateway's OS user, who may not read the operator's file); else read here."""
        self.metrics = GatewayMetrics()
        self.log = RequestLog("gateway")
        self.scrape = (
            scrape
            if scrape is not None
            else MetricsScrapeCredential.from_file(settings.metrics_credential_file)
        )

    def __call__(self, scope: dict, request_id: str, status: int, received: int, seconds: float):
        route = getattr(scope.get("route"), "path", "other")
        params = scope.get("path_params") or {}
        name = params.get("source") or params.get("domain")
        name = name if name in _KNOWN_NAMES else "other"
        m = self.metrics
        m.requests.labels(route=route, status=str(status)).inc()
        m.request_seconds.labels(route=route).observe(seconds)
        if received:
            m.received_bytes.labels(name=name).inc(received)
        if 400 <= status < 500:
            m.refusals.labels(status=str(status)).inc()
        state: dict[str, Any] = scope.get("state", {})
        self.log.write(
            {
                "request_id": request_id,
                "method": scope["method"],
                "route": route,
                "status": status,
                "decision": decision(status),
                "subject": state.get("subject"),
                "dataset": name if name != "other" else None,
                "bytes_in": received,
                "latency_ms": round(seconds * 1000, 3),
            }
        )
