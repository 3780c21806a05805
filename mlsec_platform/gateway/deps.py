"""The gateway's typed dependencies: its services, the uploader from the bearer token, the
upload slots, and the admitted input (read within its limit and checked against its contract).

An upload is refused as early as it can be: the token, the contract and a declared size before
the body is read, the size, stalls and the byte checks while it is read, the rows before
anything is stored. Whatever refuses it raises
a typed error; the app's one exception handler keeps the input and answers.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool

from mlsec_platform.gateway.body import BodyReader, refuse_declared_over
from mlsec_platform.gateway.doors import Arrival
from mlsec_platform.gateway.errors import ScopeNotGranted
from mlsec_platform.gateway.publisher import EventPublisher
from mlsec_platform.gateway.services import GatewayServices, Intake
from mlsec_platform.gateway.sinks import Sink
from mlsec_platform.identities.tokens import check_binding, granted_scopes
from mlsec_platform.serving.tls import presented_certificate


def get_services(request: Request) -> GatewayServices:
    return request.app.state.services


def get_publisher(request: Request) -> EventPublisher:
    return request.app.state.publisher


def get_upload_slots(request: Request) -> asyncio.Semaphore:
    return request.app.state.upload_slots


def current_arrival(request: Request) -> Arrival:
    """What is arriving, as the route's door recorded it."""
    return request.state.arrival


Services = Annotated[GatewayServices, Depends(get_services)]
Publisher = Annotated[EventPublisher, Depends(get_publisher)]
#: How many bodies are read and checked at once (each holds a few blocks and a spool file).
UploadSlots = Annotated[asyncio.Semaphore, Depends(get_upload_slots)]
CurrentArrival = Annotated[Arrival, Depends(current_arrival)]


@dataclass(frozen=True)
class Uploader:
    """The caller, as its verified token names it."""

    subject: str


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


async def upload_principal(
    request: Request, arrival: CurrentArrival, services: Services
) -> Uploader:
    """The caller, from a token that grants sending what is arriving, presented over a
    connection with the client certificate the token is bound to.

    Checked before the body is read: a refusal keeps only the body's first bytes, so nobody
    can make the gateway read or store large bodies without a valid token."""
    claims = services.verifier.verify(bearer_token(request))  # InvalidToken: 401
    check_binding(claims, presented_certificate(request.scope))  # InvalidToken: 401
    subject = request.state.subject = claims["sub"]
    scopes = granted_scopes(claims)  # InvalidToken: 401
    if arrival.scope not in scopes and f"{arrival.door.scope}:*" not in scopes:
        raise ScopeNotGranted(f"token of {subject!r} does not grant {arrival.scope}")
    return Uploader(subject)


UploadPrincipal = Annotated[Uploader, Depends(upload_principal)]


@dataclass(frozen=True)
class Admitted:
    """An input that passed its door: what arrived, where its body is (its sink), its
    contract and what the door's check made of it (a checked file, a domain's events)."""

    intake: Intake
    sink: Sink
    subject: str
    contract: Any
    checked: Any


async def admit(
    request: Request,
    arrival: CurrentArrival,
    uploader: UploadPrincipal,
    services: Services,
    slots: UploadSlots,
) -> Admitted:
    """The body read within its door's limits and checked against its contract as it arrives.

    An unknown contract or a declared size over the limit is refused before the body is read
    or an upload slot is taken; the sink is closed by the route or by the refusal."""
    contract = arrival.contract()
    limit = arrival.door.max_bytes(services.settings)
    refuse_declared_over(request, limit, arrival.door.body_noun)
    reader: BodyReader = request.state.reader
    async with slots:
        sink = request.state.sink = await arrival.door.sink(contract, request)
        await reader.read(limit, sink.write, arrival.door.body_noun)
        checked = await run_in_threadpool(sink.finish)
    return Admitted(arrival.intake(request, reader), sink, uploader.subject, contract, checked)


AdmittedInput = Annotated[Admitted, Depends(admit)]
