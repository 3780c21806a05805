"""The audited-request middleware: exactly one audit event per request, committed before the
response's first byte leaves (fail closed: 503 when it cannot be).

Pure ASGI on purpose: it is on every request's path, and a BaseHTTPMiddleware would add a
task and a stream per request.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Mapping
from typing import Any

import orjson
from fastapi.responses import Response

from broker_api.audit import AuditUnavailable
from broker_api.services import BrokerServices


class AuditedRequests:
    """Pure ASGI middleware: exactly one audit event per request, committed before the
    response's first byte leaves. The endpoint fills ``request.state.audit``; if the event
    cannot be recorded the response is replaced by a 503 (fail closed).

    An endpoint running on a worker thread seals its finished response there
    (``request.state.seal``): the event starts committing at once, while the response travels
    back to the event loop, and the sealed response is the one sent. Anything else (refusals,
    errors, endpoints on the loop) is recorded here once the app has answered.
    """

    def __init__(self, app: Any, services: BrokerServices) -> None:
        self.app = app
        self.services = services

    def _event(self, scope: dict, request_id: str, started: float, status: int) -> dict:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        fields = dict(scope["state"]["audit"])
        event = {
            "request_id": request_id,
            "correlation_id": headers.get("x-correlation-id", "")[:128] or None,
            "method": scope["method"],
            "path": scope["path"][:512],
            "client": scope["client"][0] if scope.get("client") else None,
            "status": status,
            "outcome": fields.pop("outcome", "allowed" if status < 400 else "denied"),
            "latency_ms": round((time.perf_counter() - started) * 1000, 3),
            **fields,
        }
        if event.get("revealed"):
            event["severity"] = "high"
        return event

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = uuid.uuid4().hex
        state = scope.setdefault("state", {})
        state["request_id"], state["audit"] = request_id, {}
        held: list[dict] = []
        loop = asyncio.get_running_loop()
        sealed: list[Response] = []
        commit: asyncio.Future[str] = loop.create_future()

        def seal(response: Response) -> None:
            """Called once, on the endpoint's thread, with the final response."""
            event = self._event(scope, request_id, started, response.status_code)
            # The loop's next turn puts the INSERT on the wire.
            loop.call_soon_threadsafe(self.services.sink.submit, event, commit)
            sealed.append(response)

        state["seal"] = seal

        async def hold(message: dict) -> None:
            held.append(message)  # sent below, once the audit event is committed

        try:
            await self.app(scope, receive, hold)
        except Exception:  # noqa: BLE001 - never leak internals; still audited
            held = _plain(
                500, {"status": 500, "reason": "internal error", "request_id": request_id}
            )
        if sealed:  # the event describes the sealed response: send exactly that one
            held = []
            await sealed[0](scope, receive, hold)
            recorded = asyncio.shield(commit)
        else:
            if not any(m["type"] == "http.response.start" for m in held):
                held = _plain(
                    500, {"status": 500, "reason": "no response", "request_id": request_id}
                )
            status = next(m for m in held if m["type"] == "http.response.start")["status"]
            recorded = self.services.sink.arecord(self._event(scope, request_id, started, status))
        try:
            await recorded
        except AuditUnavailable:
            held = _plain(
                503,
                {
                    "status": 503,
                    "request_id": request_id,
                    "reason": "audit log unavailable: request not served",
                },
                {"retry-after": "5"},
            )
        start = next(m for m in held if m["type"] == "http.response.start")
        start["headers"] = [*start.get("headers", []), (b"x-request-id", request_id.encode())]
        for message in held:
            await send(message)
        # Label by route template, so unknown paths cannot grow the series without bound.
        endpoint = getattr(scope.get("route"), "path", "other")
        self.services.metrics.observe_request(
            endpoint, start["status"], time.perf_counter() - started
        )


def _plain(status: int, body: dict, headers: Mapping[str, str] | None = None) -> list[dict]:
    payload = orjson.dumps(body)
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    raw += [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    return [
        {"type": "http.response.start", "status": status, "headers": raw},
        {"type": "http.response.body", "body": payload, "more_body": False},
    ]
