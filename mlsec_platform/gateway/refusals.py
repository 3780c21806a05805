"""The gateway's one exception handler: every refusal is kept in quarantine with its reason,
recorded in the audit log, and answered with a :class:`Refusal` of the error's status."""

from __future__ import annotations

from fastapi import Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from mlsec_platform.errors import MlsecError
from mlsec_platform.gateway.body import BodyReader
from mlsec_platform.gateway.doors import Arrival
from mlsec_platform.gateway.errors import TooLarge
from mlsec_platform.gateway.models import Refusal
from mlsec_platform.gateway.services import GatewayServices
from mlsec_platform.gateway.sinks import Sink
from mlsec_platform.sources.validation import Rejected


async def refuse(request: Request, exc: MlsecError) -> JSONResponse:
    """Keep, audit and answer the input ``exc`` refused (its status, its message)."""
    arrival: Arrival | None = getattr(request.state, "arrival", None)
    if arrival is None:  # not an upload: nothing to keep, a server error
        raise exc
    services: GatewayServices = request.app.state.services
    sink: Sink | None = getattr(request.state, "sink", None)
    try:
        intake, payload = await _evidence(request, arrival, sink, exc)
        status, reason = exc.http_status, str(exc)
        subject = getattr(request.state, "subject", None)
        qid, kept = await run_in_threadpool(
            services.quarantine, intake, payload, status, reason, subject
        )
    finally:
        if sink is not None:
            sink.close()
    if not kept:
        reason += " (not kept: quarantine is over its growth cap)"
    await run_in_threadpool(
        services.audit.emit,
        "ingest.rejected",
        {
            "kind": intake.kind,
            "name": intake.name,
            "status": status,
            "reason": reason,
            "quarantine_id": qid,
            "kept": kept,
            "subject": subject,
            "sha256": intake.sha256,
            "size": intake.size,
            "declared_size": intake.declared_size,
            "client": intake.client,
        },
    )
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else {}
    if not request.state.reader.complete:
        # The rest of the body is not wanted: close rather than receive and discard it.
        headers["Connection"] = "close"
    return JSONResponse(
        status_code=status,
        content=Refusal(status=status, reason=reason, quarantine_id=qid).model_dump(),
        headers=headers,
    )


async def _evidence(request: Request, arrival: Arrival, sink: Sink | None, exc: MlsecError):
    """What arriving input is kept of a refused request.

    A body refused by its checks (its token and contract were good) is kept as far as it was
    read. Of any other only the first bytes are kept: refused before it was read (the token,
    the contract), it is read no further; over the size cap or stalled, the rest is not
    evidence; declared over the cap, not a byte of it is read.
    """
    reader: BodyReader = request.state.reader
    if isinstance(exc, Rejected) and sink is not None:
        return arrival.intake(request, reader), sink.payload()
    declared_over = isinstance(exc, TooLarge) and reader.size == 0 and not reader.complete
    if sink is None and not declared_over:
        await reader.read_head()
    return arrival.intake(request, reader, kept=reader.head), reader.head
