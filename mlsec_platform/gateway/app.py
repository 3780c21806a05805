"""The ingestion gateway (zone Z1): authenticated uploads of files and events.

It checks what arrives and puts accepted files in the landing bucket and accepted events on the
JetStream subject ``raw.<domain>.ingest``. It never writes Raw: the official connectors do that.
Everything refused is kept in quarantine with its reason and recorded in the audit log.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import pyarrow.csv as pacsv
from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from mlsec_platform.catalog.sources import EVENT_DOMAINS, FILE_SOURCES
from mlsec_platform.gateway.services import GatewayServices, Intake, batch_id
from mlsec_platform.identities.tokens import InvalidToken
from mlsec_platform.sources import event_stream
from mlsec_platform.sources.validation import Rejected, parse_events, validate_file

VERSION = "1.0.0"
#: Of a request refused for its token, this much of the body is kept in quarantine.
UNAUTHENTICATED_KEEP_BYTES = 1024 * 1024


class FileAccepted(BaseModel):
    batch_id: str
    source: str
    contract_version: int
    rows: int
    sha256: str
    landing_key: str
    neutralized_cells: int


class EventsAccepted(BaseModel):
    domain: str
    subject: str
    accepted: int
    duplicates: int


class Refusal(BaseModel):
    status: int
    reason: str
    quarantine_id: str


async def _read_limited(request: Request, limit: int) -> tuple[bytes, bool]:
    """The body, or its first `limit` bytes and True when it is larger (kept for quarantine)."""
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            chunks.append(chunk[: max(0, limit - (size - len(chunk)))])
            return b"".join(chunks), True
        chunks.append(chunk)
    return b"".join(chunks), False


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def create_app(services: GatewayServices) -> FastAPI:
    state: dict[str, Any] = {}
    # Bodies are held in memory while checked: bound how many are read at once.
    uploads = asyncio.Semaphore(services.settings.gateway_max_concurrent_uploads)

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        credentials = await run_in_threadpool(services.nats_credentials)
        state["nats"] = await event_stream.connect(services.nats_url, credentials, long_lived=True)
        state["js"] = state["nats"].jetstream()
        try:
            yield
        finally:
            if not state["nats"].is_closed:
                await state["nats"].drain()
            await run_in_threadpool(services.close)

    app = FastAPI(
        title="mlsec ingestion gateway",
        version=VERSION,
        lifespan=lifespan,
        responses={
            401: {"model": Refusal},
            403: {"model": Refusal},
            404: {"model": Refusal},
            413: {"model": Refusal},
            415: {"model": Refusal},
            422: {"model": Refusal},
        },
    )

    def authenticate(request: Request, scope: str) -> dict[str, Any]:
        try:
            claims = services.verifier.verify(_bearer(request))
        except InvalidToken as exc:
            raise Rejected(401, str(exc)) from None
        scopes = claims.get("scope", [])
        if scope not in scopes and f"{scope.split(':')[0]}:*" not in scopes:
            refusal = Rejected(403, f"token of {claims['sub']!r} does not grant {scope}")
            refusal.subject = claims["sub"]
            raise refusal
        return claims

    async def refuse(intake: Intake, body: bytes, exc: Rejected, subject: str | None):
        qid = await run_in_threadpool(
            services.quarantine, intake, body, exc.status, exc.reason, subject
        )
        await run_in_threadpool(
            services.audit.emit,
            "ingest.rejected",
            {
                "kind": intake.kind,
                "name": intake.name,
                "status": exc.status,
                "reason": exc.reason,
                "quarantine_id": qid,
                "subject": subject,
                "sha256": intake.sha256,
                "size": intake.size,
                "client": intake.client,
            },
        )
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return JSONResponse(
            status_code=exc.status,
            content=Refusal(status=exc.status, reason=exc.reason, quarantine_id=qid).model_dump(),
            headers=headers,
        )

    async def intake(request: Request, kind: str, name: str, limit: int) -> tuple[Intake, bytes]:
        body, truncated = await _read_limited(request, limit)
        return (
            Intake(
                kind=kind,
                name=name,
                received_at=datetime.now(UTC).isoformat(),
                sha256=hashlib.sha256(body).hexdigest(),
                size=len(body),
                truncated=truncated,
                content_type=request.headers.get("content-type"),
                client=request.client.host if request.client else None,
            ),
            body,
        )

    async def admit(request: Request, kind: str, name: str, *, limit: int, scope: str,
                    contracts: dict, check):  # fmt: skip
        """Intake, identity, size, contract and checks, the same for files and events.

        Returns (intake, subject, contract, checked) or, when refused, the refusal response
        (the input kept in quarantine and audited). The token is checked before the body is
        read: of an unauthenticated request only the first bytes are kept, as evidence, so
        nobody can make the gateway buffer or store large bodies without a valid token.
        """
        try:
            claims = authenticate(request, f"{scope}:{name}")
        except Rejected as exc:
            evidence = min(limit, UNAUTHENTICATED_KEEP_BYTES)
            arrived, body = await intake(request, kind, name, evidence)
            return await refuse(arrived, body, exc, getattr(exc, "subject", None))
        subject = claims["sub"]
        # The body stays in memory until checked: the semaphore bounds how many at once.
        async with uploads:
            arrived, body = await intake(request, kind, name, limit)
            try:
                if arrived.truncated:
                    raise Rejected(413, f"{'upload' if kind == 'file' else 'request'} is larger "
                                        f"than {limit} bytes")  # fmt: skip
                contract = contracts.get(name)
                if contract is None:
                    what = "source" if kind == "file" else "event domain"
                    raise Rejected(404, f"unknown {what} {name!r}; known: {', '.join(contracts)}")
                checked = await run_in_threadpool(check, body, contract)
            except Rejected as exc:
                return await refuse(arrived, body, exc, subject)
        return arrived, body, subject, contract, checked

    @app.put(
        "/v1/files/{source}",
        status_code=201,
        response_model=FileAccepted,
        summary="Upload one CSV file of a source",
    )
    async def upload_file(source: str, request: Request):
        admitted = await admit(
            request, "file", source, limit=services.settings.gateway_max_file_bytes,
            scope="upload", contracts=FILE_SOURCES, check=validate_file,
        )  # fmt: skip
        if isinstance(admitted, JSONResponse):
            return admitted
        arrived, body, subject, contract, (table, neutralized) = admitted

        stored = body
        if neutralized:
            buffer = io.BytesIO()
            pacsv.write_csv(table, buffer)
            stored = buffer.getvalue()
        batch = batch_id()
        key = await run_in_threadpool(
            services.put_landing,
            source,
            batch,
            stored,
            {
                "sha256": hashlib.sha256(stored).hexdigest(),
                "received-sha256": arrived.sha256,
                "uploader": subject,
                "received-at": arrived.received_at,
                "contract-version": str(contract.version),
                "rows": str(table.num_rows),
                "neutralized-cells": str(neutralized),
            },
        )
        await run_in_threadpool(
            services.audit.emit,
            "ingest.accepted",
            {"kind": "file", "name": source, "batch_id": batch, "rows": table.num_rows,
             "sha256": arrived.sha256, "subject": subject, "landing_key": key},
        )  # fmt: skip
        return FileAccepted(
            batch_id=batch,
            source=source,
            contract_version=contract.version,
            rows=table.num_rows,
            sha256=arrived.sha256,
            landing_key=key,
            neutralized_cells=neutralized,
        )

    @app.post(
        "/v1/events/{domain}",
        status_code=202,
        response_model=EventsAccepted,
        summary="Publish JSON events of a domain (an array or one object)",
    )
    async def publish_events(domain: str, request: Request):
        admitted = await admit(
            request, "events", domain, limit=services.settings.gateway_max_events_bytes,
            scope="publish", contracts=EVENT_DOMAINS, check=parse_events,
        )  # fmt: skip
        if isinstance(admitted, JSONResponse):
            return admitted
        arrived, _, subject, contract, events = admitted

        js = state["js"]
        futures = [
            await js.publish_async(
                contract.subject,
                json.dumps(event, separators=(",", ":")).encode(),
                headers={"Nats-Msg-Id": event["event_id"]},
            )
            for event in events
        ]
        acks = await asyncio.gather(*futures)
        duplicates = sum(1 for ack in acks if ack.duplicate)
        await run_in_threadpool(
            services.audit.emit,
            "ingest.accepted",
            {"kind": "events", "name": domain, "events": len(events), "duplicates": duplicates,
             "sha256": arrived.sha256, "subject": subject},
        )  # fmt: skip
        return EventsAccepted(
            domain=domain, subject=contract.subject, accepted=len(events) - duplicates,
            duplicates=duplicates,
        )  # fmt: skip

    @app.get("/health", summary="Liveness")
    async def health() -> dict[str, str]:
        return {"status": "ok", "version": VERSION}

    return app
