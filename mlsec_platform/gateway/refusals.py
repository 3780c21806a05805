"""The gateway's one exception handler: every refusal is kept in quarantine with its reason,
recorded in the audit log, and answered with a :class:`Refusal` of the error's status."""

from __future__ import annotations

from fastapi import Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from mlsec_platform.errors import MlsecError
from mlsec_platform.gateway.doors import Arrival
from mlsec_platform.gateway.models import Refusal
from mlsec_platform.gateway.services import GatewayServices

#: Of a request refused for its token, this much of the body is kept in quarantine.
UNAUTHENTICATED_KEEP_BYTES = 1024 * 1024


async def refuse(request: Request, exc: MlsecError) -> JSONResponse:
    """Keep, audit and answer the input ``exc`` refused (its status, its message)."""
    arrival: Arrival | None = getattr(request.state, "arrival", None)
    if arrival is None:  # not an upload: nothing to keep, a server error
        raise exc
    services: GatewayServices = request.app.state.services
    kept = getattr(request.state, "kept", None)
    if kept is None:
        # Refused for its token, before the body was read: its first bytes are the evidence.
        limit = arrival.door.max_bytes(services.settings)
        kept = await arrival.read(request, min(limit, UNAUTHENTICATED_KEEP_BYTES))
    intake, body = kept
    status, reason = exc.http_status, str(exc)
    subject = getattr(request.state, "subject", None)
    qid = await run_in_threadpool(services.quarantine, intake, body, status, reason, subject)
    await run_in_threadpool(
        services.audit.emit,
        "ingest.rejected",
        {
            "kind": intake.kind,
            "name": intake.name,
            "status": status,
            "reason": reason,
            "quarantine_id": qid,
            "subject": subject,
            "sha256": intake.sha256,
            "size": intake.size,
            "client": intake.client,
        },
    )
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(
        status_code=status,
        content=Refusal(status=status, reason=reason, quarantine_id=qid).model_dump(),
        headers=headers,
    )
