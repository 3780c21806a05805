"""Liveness and metrics of the gateway, for the people and systems that run it."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from mlsec_platform.gateway.models import VERSION
from mlsec_platform.serving.scrape import metrics_response

router = APIRouter()


@router.get("/health", summary="Liveness")
async def health() -> dict[str, str]:
    return {"status": "ok", "version": VERSION}


# Not in the OpenAPI document: it is for a scraper, not the uploaders the document is for,
# and its refusals hold no quarantine id.
@router.get("/metrics", response_class=Response, include_in_schema=False)
async def metrics(request: Request) -> Response:
    """Prometheus text format, for a scraper that sends the scrape credential as its bearer
    token (``MLSEC_METRICS_CREDENTIAL_FILE``); refused to anyone else."""
    observed = request.app.state.observed
    authorization = request.headers.get("authorization")
    return metrics_response(observed.scrape, authorization, observed.metrics.registry)
