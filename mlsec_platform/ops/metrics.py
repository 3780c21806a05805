"""`mlsec metrics`: the pipeline runs' Prometheus metrics (``mlsec_pipeline_*``), read from
the Dagster instance at each scrape (``mlsec_platform/telemetry/pipeline_metrics.py``), for the
scraper holding ``MLSEC_METRICS_CREDENTIAL_FILE``. Plain HTTP, on loopback by default: put it
behind the same network rules as the scraper, or a TLS proxy."""

from __future__ import annotations

from collections.abc import Callable

import dagster as dg
from fastapi import FastAPI, Request
from fastapi.responses import Response
from prometheus_client import CollectorRegistry

from mlsec_platform.ops.services import serving
from mlsec_platform.serving import server
from mlsec_platform.serving.scrape import MetricsScrapeCredential, metrics_response
from mlsec_platform.settings import PlatformSettings
from mlsec_platform.stack.orchestrator import apply_environment, orchestrator_environment
from mlsec_platform.telemetry.pipeline_metrics import PipelineMetrics

Echo = Callable[[str], None]
#: Default port of `mlsec metrics` (beside Prometheus's own 9090).
METRICS_PORT = 9464


def metrics_app(instance: dg.DagsterInstance, credential: MetricsScrapeCredential) -> FastAPI:
    """``GET /metrics`` over ``instance``'s runs, for the holder of ``credential`` only."""
    registry = CollectorRegistry()
    registry.register(PipelineMetrics(instance))
    app = FastAPI(title="mlsec pipeline metrics", docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/metrics")
    def metrics(request: Request) -> Response:  # sync: the event log is read on a worker thread
        return metrics_response(credential, request.headers.get("authorization"), registry)

    return app


def serve_metrics(settings: PlatformSettings, host: str, port: int, echo: Echo) -> None:
    """Serve the pipeline metrics until interrupted."""
    credential = MetricsScrapeCredential.from_file(settings.metrics_credential_file)
    apply_environment(orchestrator_environment(settings))
    with dg.DagsterInstance.get() as instance:
        url = f"http://{host}:{port}"
        echo(f"Pipeline metrics on {url}/metrics (Ctrl-C to stop)")
        with serving(settings, "metrics", url, host, port):
            server.serve(metrics_app(instance, credential), host, port)
