"""The gateway's request envelope: exactly one audit event per request, as in the broker.

An upload's event is the one its route or the refusal handler writes (``ingest.accepted``,
``ingest.rejected``): it carries the request's id. Every other answer (the router's own 404,
405 and 307, a server error, health) gets a ``gateway.request`` event here, written before the
answer leaves; when it cannot be written the answer is 503 (fail closed).

In front of everything: a limit per client address on refusals of unauthenticated requests
(429 before the token is verified or the body read), and identical unauthenticated refusals
folded into one event with their count (``mlsec_platform.serving.envelope``).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from contextvars import ContextVar
from typing import Any

import orjson
from fastapi.concurrency import run_in_threadpool

from mlsec_platform.audit.chain import AuditWriteError
from mlsec_platform.serving.envelope import (
    CHARGED_STATUSES,
    TOO_MANY_REFUSALS,
    ClientLimiter,
    RefusalFolder,
    plain,
)

EVENT_TYPE = "gateway.request"

#: The request being served: its id, and the id of its event once one is written.
_serving: ContextVar[dict[str, Any] | None] = ContextVar("gateway_request", default=None)


class RequestAudit:
    """The gateway's audit log, request-aware: an event written while serving a request
    (on the loop or a worker thread: both see the request's context) carries its id and is
    that request's one event."""

    def __init__(self, log: Any) -> None:
        self.log = log

    def emit(self, event_type: str, payload: Mapping[str, Any], **kwargs: Any) -> str:
        serving = _serving.get()
        if serving is not None:
            payload = {**payload, "request_id": serving["request_id"]}
        event_id = self.log.emit(event_type, payload, **kwargs)
        if serving is not None:
            serving["event_id"] = event_id
        return event_id

    def __getattr__(self, name: str) -> Any:
        if name == "log":  # not set yet (a copy being built): no recursion through it
            raise AttributeError(name)
        return getattr(self.log, name)


class AuditedRequests:
    """Pure ASGI middleware: one audit event per request, written before the answer leaves."""

    def __init__(self, app: Any, services: Any, observed: Any) -> None:
        self.app = app
        self.services = services
        self.observed = observed
        settings = services.settings
        self.limiter = ClientLimiter(settings.client_refusal_burst, settings.client_refusal_rate)
        self.folder = RefusalFolder(self._write, window=settings.audit_fold_window)

    async def _write(self, event: dict) -> str:
        return await run_in_threadpool(self.services.audit.emit, EVENT_TYPE, event)

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = uuid.uuid4().hex
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        client = scope["client"][0] if scope.get("client") else None
        held: list[dict] = []
        serving = {"request_id": request_id}

        async def hold(message: dict) -> None:
            held.append(message)

        received = [0]

        async def counted() -> dict:
            message = await receive()
            received[0] += len(message.get("body", b""))
            return message

        wait = self.limiter.retry_after(client)
        if wait is not None:
            retry = {"retry-after": str(max(1, round(wait)))}
            held = plain(429, {"status": 429, "reason": TOO_MANY_REFUSALS}, retry)
        else:
            token = _serving.set(serving)
            try:
                await self.app(scope, counted, hold)
            except Exception:  # noqa: BLE001 - never leak internals; still audited
                held = plain(500, {"status": 500, "reason": "internal error"})
            finally:
                _serving.reset(token)
            if not any(m["type"] == "http.response.start" for m in held):
                held = plain(500, {"status": 500, "reason": "no response"})
        start = next(m for m in held if m["type"] == "http.response.start")
        unauthenticated = 400 <= start["status"] < 500 and not state.get("subject")
        if unauthenticated and start["status"] in CHARGED_STATUSES:
            self.limiter.charge(client)
        if "event_id" not in serving:  # no upload event: this request's event is written here
            event = _event(scope, request_id, client, start["status"], held, started)
            try:
                if unauthenticated:
                    key = (client, event["method"], event["status"], event.get("reason"))
                    await self.folder.record(key, event)
                else:
                    await self._write(event)
            except AuditWriteError:
                reason = "audit log unavailable: request not served"
                held = plain(503, {"status": 503, "reason": reason}, {"retry-after": "5"})
                start = held[0]
        start["headers"] = [*start.get("headers", []), (b"x-request-id", request_id.encode())]
        for message in held:
            await send(message)
        self.observed(
            scope, request_id, start["status"], received[0], time.perf_counter() - started
        )


def _event(
    scope: dict, request_id: str, client: str | None, status: int, held: list[dict], started: float
) -> dict:
    """The ``gateway.request`` event of an answer no upload event describes."""
    return {
        "request_id": request_id,
        "method": scope["method"],
        "path": scope["path"][:512],
        "client": client,
        "status": status,
        "reason": _reason(held),
        "subject": scope["state"].get("subject"),
        "outcome": "allowed" if status < 400 else "denied",
        "latency_ms": round((time.perf_counter() - started) * 1000, 3),
    }


def _reason(held: list[dict]) -> str | None:
    """What the answer said (its ``reason`` or ``detail``), if it said it in a small JSON."""
    body = b"".join(m.get("body", b"") for m in held if m["type"] == "http.response.body")
    if not body or len(body) > 4096:
        return None
    try:
        answer = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(answer, dict):
        return None
    reason = answer.get("reason", answer.get("detail"))
    return str(reason)[:500] if reason is not None else None
