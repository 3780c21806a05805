"""The Access Broker: the only read path to curated data from outside the platform.

Every request goes: identity (JWT against the issuer's JWKS) -> rate and concurrency limits ->
policy decision (default deny) -> a structured query compiled to parameterized SQL over a
pinned snapshot -> masking -> response with lineage. Exactly one audit event is committed per
request, allowed or denied, before the response leaves; if it cannot be, the answer is 503.
"""

from __future__ import annotations

from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from broker_api.errors import RequestRefused
from broker_api.middleware import AuditedRequests
from broker_api.models import VERSION
from broker_api.responses import json_response
from broker_api.routes import catalog, features, operations, query, receipts
from broker_api.services import BrokerServices
from mlsec_platform.serving.docs import serve_docs


def create_app(services: BrokerServices) -> FastAPI:
    """The broker's app over ``services`` (closed when the app shuts down)."""

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        try:
            yield
        finally:
            await run_in_threadpool(services.close)

    app = FastAPI(
        title="mlsec Access Broker",
        version=VERSION,
        description=__doc__,
        lifespan=lifespan,
        docs_url=None,  # FastAPI's pages load their assets from a CDN: serve_docs's do not
        redoc_url=None,
    )
    app.state.services = services
    app.add_middleware(AuditedRequests, services=services)
    for refusal in (RequestRefused, RequestValidationError, StarletteHTTPException):
        app.add_exception_handler(refusal, problem)
    # The routers' routes become the app's own: FastAPI matches an included router as a
    # subtree of its own on every request (measured: tens of microseconds a request), and these
    # routes carry all they need (tags, problem responses, dependencies) from their router.
    for routes in (query, features, catalog, receipts, operations):
        app.router.routes.extend(routes.router.routes)
    serve_docs(app, public=("/health",))  # after the API's routes: matched after them too
    return app


async def problem(request: Request, exc: Exception) -> Response:
    """The one answer to a request refused: its status, a reason safe to show, and the ids that
    find its audit event (the decision's too, once one was taken)."""
    headers = None
    if isinstance(exc, RequestRefused):
        status, reason, headers = exc.http_status, exc.reason, exc.headers
    elif isinstance(exc, RequestValidationError):
        # Name where and what, never echo the input back.
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        status, reason = 400, f"invalid request at {where}: {first.get('msg', 'invalid')}"
    elif isinstance(exc, StarletteHTTPException):
        status, reason = exc.status_code, str(exc.detail)
    else:  # not registered for anything else
        raise exc
    audit = request.state.audit
    audit.setdefault("reason", reason)
    body = {
        "status": status,
        "reason": reason,
        "request_id": request.state.request_id,
        "decision_id": audit.get("decision_id"),
    }
    return json_response(body, status, headers)
