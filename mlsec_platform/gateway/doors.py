"""The gateway's two ways in: CSV files of a source and JSON events of a domain.

A door says what arrives through it and how it is checked: the token scope it needs, the
contracts it knows, its size limit and its check. Each route names its door as a dependency;
the door records the arrival (and the reader of its body) on the request, so that whatever
refuses it later (the token, the size, a stall, the contract, the check) is answered and kept
the same way.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from operator import attrgetter
from typing import Any

from fastapi import Request

from mlsec_platform.catalog.sources import (
    EVENT_DOMAINS,
    FILE_SOURCES,
    EventContract,
    SourceContract,
)
from mlsec_platform.errors import InvalidInput
from mlsec_platform.gateway.body import BodyReader, declared_length
from mlsec_platform.gateway.errors import UnknownContract
from mlsec_platform.gateway.services import Intake
from mlsec_platform.gateway.sinks import EventSink, Sink, SpoolSink
from mlsec_platform.settings import PlatformSettings
from mlsec_platform.sources.validation import escaped


@dataclass(frozen=True, eq=False)  # compared by identity: FastAPI caches dependencies by it
class Door:
    """One way in; used as a route's dependency, it records each arrival on its request."""

    kind: str  # "file" or "events": quarantine and audit name the input so
    param: str  # the path parameter that names the source or domain
    scope: str  # a token must grant "<scope>:<name>" or "<scope>:*"
    noun: str  # what a name names, in refusals
    body_noun: str  # what a body is, in refusals
    contracts: Mapping[str, Any]
    max_bytes: Callable[[PlatformSettings], int]
    #: Where a body of a contract goes and how it is checked, made once the body is wanted.
    sink: Callable[[Any, Request], Awaitable[Sink]]

    def __call__(self, request: Request) -> Arrival:
        """Dependency: what is arriving through this door, recorded on the request with the
        reader of its body (nothing is read yet).

        The name is checked first: a known one is kept as it is, any other only in an escaped,
        bounded form (NUL, CR/LF, backslashes or a megabyte of caller text must reach neither
        the audit log nor a refusal's reason), and refused later as an unknown contract."""
        settings: PlatformSettings = request.app.state.services.settings
        name = request.path_params[self.param]
        shown = name if name in self.contracts else escaped(name, SHOWN_NAME_CHARS)
        arrival = Arrival(self, shown)
        request.state.arrival = arrival
        request.state.reader = BodyReader(
            request,
            keep=settings.gateway_quarantine_keep_bytes,
            idle=settings.gateway_body_idle_timeout,
            deadline=settings.gateway_body_deadline,
        )
        return arrival


#: How much of an unknown name a refusal and its audit event quote.
SHOWN_NAME_CHARS = 100


@dataclass(frozen=True)
class Arrival:
    """An input arriving through ``door`` for the source or domain ``name``."""

    door: Door
    name: str
    received_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())

    @property
    def scope(self) -> str:
        return f"{self.door.scope}:{self.name}"

    def contract(self) -> Any:
        """The contract of ``name``; :class:`UnknownContract` (404) when there is none."""
        contract = self.door.contracts.get(self.name)
        if contract is None:
            known = ", ".join(self.door.contracts)
            raise UnknownContract(f"unknown {self.door.noun} '{self.name}'; known: {known}")
        return contract

    def intake(self, request: Request, reader: BodyReader, kept: bytes | None = None) -> Intake:
        """What arrived of the body: all that was read, or only ``kept`` (its first bytes,
        the evidence of a body refused before it was read whole), digest and size alike."""
        read_whole = kept is None
        return Intake(
            kind=self.door.kind,
            name=self.name,
            received_at=self.received_at,
            sha256=reader.sha256 if read_whole else hashlib.sha256(kept).hexdigest(),
            size=reader.size if read_whole else len(kept),
            truncated=not reader.complete or (not read_whole and len(kept) < reader.size),
            declared_size=_declared_or_none(request),
            content_type=request.headers.get("content-type"),
            client=request.client.host if request.client else None,
        )


def _declared_or_none(request: Request) -> int | None:
    try:
        return declared_length(request)
    except InvalidInput:  # a malformed Content-Length: refused on its own, recorded as none
        return None


async def _file_sink(contract: SourceContract, request: Request) -> Sink:
    return SpoolSink(contract)


async def _event_sink(contract: EventContract, request: Request) -> Sink:
    """Events are sized as they arrive against the message server's own limit."""
    return EventSink(contract, await request.app.state.publisher.max_payload())


FILES = Door(
    kind="file",
    param="source",
    scope="upload",
    noun="source",
    body_noun="upload",
    contracts=FILE_SOURCES,
    max_bytes=attrgetter("gateway_max_file_bytes"),
    sink=_file_sink,
)
EVENTS = Door(
    kind="events",
    param="domain",
    scope="publish",
    noun="event domain",
    body_noun="request",
    contracts=EVENT_DOMAINS,
    max_bytes=attrgetter("gateway_max_events_bytes"),
    sink=_event_sink,
)
