"""The audited-request middleware: exactly one audit event per request, committed before the
response's first byte leaves (fail closed: 503 when it cannot be).

It is also the broker's request envelope (``mlsec_platform.serving.envelope``): the body cap
(413), the limit per client address on unauthenticated refusals (429, before authentication),
and the folding of identical unauthenticated refusals into one event with their count.

Pure ASGI on purpose: it is on every request's path, and a BaseHTTPMiddleware would add a
task and a stream per request.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Mapping
from typing import Any

from fastapi.responses import Response

from broker_api.audit import AuditUnavailable
from broker_api.services import BrokerServices
from mlsec_platform.serving.envelope import (
    CHARGED_STATUSES,
    TOO_MANY_REFUSALS,
    CappedReceive,
    ClientLimiter,
    RefusalFolder,
    body_cap_reason,
    declared_length,
    plain,
)


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
        settings = services.settings
        self.max_body = settings.broker_max_body_bytes
        self.limiter = ClientLimiter(settings.client_refusal_burst, settings.client_refusal_rate)
        self.folder = RefusalFolder(
            lambda event: self.services.sink.arecord(event), window=settings.audit_fold_window
        )

    def _refuse_early(self, scope: dict, client: str | None) -> list[dict] | None:
        """The answer of a request refused before the app sees it: a declared body over the
        cap (413), or an address that has drawn its refusals (429); None to go on."""
        declared = declared_length(scope["headers"])
        if declared is not None and declared > self.max_body:
            return self._refusal(scope, 413, body_cap_reason(self.max_body))
        wait = self.limiter.retry_after(client)
        if wait is not None:
            retry = {"retry-after": str(max(1, round(wait)))}
            return self._refusal(scope, 429, TOO_MANY_REFUSALS, retry)
        return None

    @staticmethod
    def _refusal(
        scope: dict, status: int, reason: str, headers: Mapping[str, str] | None = None
    ) -> list[dict]:
        state = scope["state"]
        state["audit"]["reason"] = reason
        body = {"status": status, "reason": reason, "request_id": state["request_id"]}
        return plain(status, {**body, "decision_id": None}, headers)

    def _record(self, event: dict, client: str | None) -> Any:
        """The commit of ``event``: its own, or, for a refusal of an unauthenticated request,
        the folded event of its kind (which also spends the address's refusals)."""
        if event["status"] < 400 or event["status"] >= 500 or "subject" in event:
            return self.services.sink.arecord(event)
        if event["status"] in CHARGED_STATUSES:
            self.limiter.charge(client)
        key = (client, event["method"], event["status"], event.get("reason"))
        return self.folder.record(key, event)

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
        client = scope["client"][0] if scope.get("client") else None
        held: list[dict] = []
        loop = asyncio.get_running_loop()
        sealed: list[Response] = []
        recorded_events: list[dict] = []
        commit: asyncio.Future[str] = loop.create_future()

        def seal(response: Response) -> None:
            """Called once, on the endpoint's thread, with the final response."""
            event = self._event(scope, request_id, started, response.status_code)
            recorded_events.append(event)
            # The loop's next turn puts the INSERT on the wire.
            loop.call_soon_threadsafe(self.services.sink.submit, event, commit)
            sealed.append(response)

        state["seal"] = seal

        async def hold(message: dict) -> None:
            held.append(message)  # sent below, once the audit event is committed

        early = self._refuse_early(scope, client)
        if early is not None:
            held = early
        else:
            capped = CappedReceive(receive, self.max_body)
            try:
                await self.app(scope, capped, hold)
            except Exception:  # noqa: BLE001 - never leak internals; still audited
                held = plain(
                    500, {"status": 500, "reason": "internal error", "request_id": request_id}
                )
            if capped.exceeded:  # whatever the app made of it (FastAPI: a 400)
                held = self._refusal(scope, 413, body_cap_reason(self.max_body))
        if sealed:  # the event describes the sealed response: send exactly that one
            held = []
            await sealed[0](scope, receive, hold)
            recorded = asyncio.shield(commit)
        else:
            if not any(m["type"] == "http.response.start" for m in held):
                held = plain(
                    500, {"status": 500, "reason": "no response", "request_id": request_id}
                )
            status = next(m for m in held if m["type"] == "http.response.start")["status"]
            recorded_events.append(self._event(scope, request_id, started, status))
            recorded = self._record(recorded_events[0], client)
        try:
            await recorded
        except AuditUnavailable:
            held = plain(
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
        self.services.observed(
            recorded_events[0], endpoint, start["status"], time.perf_counter() - started
        )
