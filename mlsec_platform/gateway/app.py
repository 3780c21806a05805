"""The ingestion gateway (zone Z1): authenticated uploads of files and events.

It checks what arrives and puts accepted files in the landing bucket and accepted events on the
JetStream subject ``raw.<domain>.ingest``. It never writes Raw: the official connectors do that.
Everything refused is kept in quarantine with its reason and recorded in the audit log.

This module only assembles the app: its lifespan (the NATS connection), the request envelope
(``audited.py``: one audit event per request, limits before authentication), the one
exception handler (``refusals.py``) and the routers (``routes/``); ``deps.py`` admits what
arrives.
"""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool

from mlsec_platform.errors import MlsecError
from mlsec_platform.gateway.audited import AuditedRequests, RequestAudit
from mlsec_platform.gateway.models import VERSION, Refusal
from mlsec_platform.gateway.observed import ObservedRequests
from mlsec_platform.gateway.openapi import describe_doors
from mlsec_platform.gateway.publisher import EventPublisher
from mlsec_platform.gateway.refusals import refuse
from mlsec_platform.gateway.routes import events, files, health
from mlsec_platform.gateway.services import GatewayServices
from mlsec_platform.serving.docs import serve_docs
from mlsec_platform.serving.scrape import MetricsScrapeCredential

#: The statuses of refusals, each answered with a Refusal body.
REFUSAL_STATUSES = (400, 401, 403, 404, 408, 413, 415, 422)


def create_app(services: GatewayServices, scrape: MetricsScrapeCredential | None = None) -> FastAPI:
    """The gateway's app over ``services``; ``scrape``: its metrics credential when read
    already (else read from the settings' file)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        publisher = app.state.publisher = EventPublisher(
            services.nats_url,
            services.nats_credentials,
            services.settings.gateway_publish_ack_timeout,
        )
        await publisher.start()
        try:
            yield
        finally:
            await publisher.close()
            await run_in_threadpool(services.close)

    app = FastAPI(
        title="mlsec ingestion gateway",
        version=VERSION,
        lifespan=lifespan,
        responses={status: {"model": Refusal} for status in REFUSAL_STATUSES},
        docs_url=None,  # FastAPI's pages load their assets from a CDN: serve_docs's do not
        redoc_url=None,
    )
    if not isinstance(services.audit, RequestAudit):  # events name the request they record
        services.audit = RequestAudit(services.audit)
    serve_docs(app, public=("/health",), describe=describe_doors)
    app.state.services = services
    app.state.observed = observed = ObservedRequests(services.settings, scrape)
    app.add_middleware(AuditedRequests, services=services, observed=observed)
    # Each body read holds a few blocks and a spool file: bound how many are read at once.
    app.state.upload_slots = asyncio.Semaphore(services.settings.gateway_max_concurrent_uploads)
    app.add_exception_handler(MlsecError, refuse)
    for module in (files, events, health):
        app.include_router(module.router)
    return app
