"""The gateway's two ways in: CSV files of a source and JSON events of a domain.

A door says what arrives through it and how it is checked: the token scope it needs, the
contracts it knows, its size limit and its check. Each route names its door as a dependency;
the door records the arrival on the request, so that whatever refuses it later (the token,
the size, the contract, the check) is answered and kept the same way.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from operator import attrgetter
from typing import Any

from fastapi import Request

from mlsec_platform.catalog.sources import EVENT_DOMAINS, FILE_SOURCES
from mlsec_platform.gateway.errors import UnknownContract
from mlsec_platform.gateway.services import Intake
from mlsec_platform.settings import PlatformSettings
from mlsec_platform.sources.validation import escaped, parse_events, validate_file


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
    check: Callable[[bytes, Any], Any]  # raises Rejected; returns what the route needs

    def __call__(self, request: Request) -> Arrival:
        """Dependency: what is arriving through this door, recorded on the request.

        The name is checked first: a known one is kept as it is, any other only in an escaped,
        bounded form (NUL, CR/LF, backslashes or a megabyte of caller text must reach neither
        the audit log nor a refusal's reason), and refused later as an unknown contract."""
        name = request.path_params[self.param]
        shown = name if name in self.contracts else escaped(name, SHOWN_NAME_CHARS)
        arrival = Arrival(self, shown)
        request.state.arrival = arrival
        return arrival


#: How much of an unknown name a refusal and its audit event quote.
SHOWN_NAME_CHARS = 100


@dataclass(frozen=True)
class Arrival:
    """An input arriving through ``door`` for the source or domain ``name``."""

    door: Door
    name: str

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

    async def read(self, request: Request, limit: int) -> tuple[Intake, bytes]:
        """The body, or its first ``limit`` bytes when it is larger, and what arrived."""
        body, truncated = await _read_limited(request, limit)
        intake = Intake(
            kind=self.door.kind,
            name=self.name,
            received_at=datetime.now(UTC).isoformat(),
            sha256=hashlib.sha256(body).hexdigest(),
            size=len(body),
            truncated=truncated,
            content_type=request.headers.get("content-type"),
            client=request.client.host if request.client else None,
        )
        return intake, body


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


FILES = Door(
    kind="file",
    param="source",
    scope="upload",
    noun="source",
    body_noun="upload",
    contracts=FILE_SOURCES,
    max_bytes=attrgetter("gateway_max_file_bytes"),
    check=validate_file,
)
EVENTS = Door(
    kind="events",
    param="domain",
    scope="publish",
    noun="event domain",
    body_noun="request",
    contracts=EVENT_DOMAINS,
    max_bytes=attrgetter("gateway_max_events_bytes"),
    check=parse_events,
)
