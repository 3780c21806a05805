"""``/health`` and ``/metrics``: for the people and systems that run the broker. Answered on
the event loop (no executor hop), and audited like every request; ``/metrics`` only to the
scraper holding the scrape credential."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from broker_api.deps import Services
from broker_api.models import VERSION
from broker_api.responses import PROBLEM_RESPONSES, json_response

router = APIRouter(tags=["operations"], responses=PROBLEM_RESPONSES)


@router.get("/health")
async def health() -> Response:
    """Liveness: the broker answers and its audit writer is running."""
    return json_response({"status": "ok", "version": VERSION})


@router.get("/metrics", response_class=Response)
async def metrics(request: Request, services: Services) -> Response:
    """Prometheus text format, for a scraper that sends the scrape credential as its bearer
    token."""
    services.scrape.check(request.headers.get("authorization"))
    body, content_type = services.metrics.render()
    return Response(body, media_type=content_type)
