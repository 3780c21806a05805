"""Reading a request body within its limits: its declared size, its size, its pauses and its
total time, without ever holding it whole.

The reader hands the body on in blocks of about ``BLOCK_BYTES`` to a sink (a spool file and
the stream checks of a file or of an event batch), in a worker thread so the checks do not
hold up the event loop. It keeps the digest and size of what arrived and, as evidence
for quarantine, only the body's first ``keep`` bytes. A body whose Content-Length is over the
limit is refused before a byte of it is read; one that pauses longer than the idle timeout or
takes longer than the deadline is refused with 408, which frees its upload slot.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable

from fastapi import Request
from fastapi.concurrency import run_in_threadpool

from mlsec_platform.gateway.errors import BodyIncomplete, BodyTimeout, TooLarge

#: How much of a body is gathered before it is handed to the sink (and its checks).
BLOCK_BYTES = 1 << 20


def declared_length(request: Request) -> int | None:
    """The body's Content-Length, None when it is not declared (chunked)."""
    value = request.headers.get("content-length")
    if value is None:
        return None
    if not value.strip().isdigit():
        raise BodyIncomplete(f"Content-Length {value!r} is not a number of bytes")
    return int(value)


def refuse_declared_over(request: Request, limit: int, noun: str) -> None:
    """:class:`TooLarge` when the body declares more than ``limit`` bytes: nothing is read."""
    declared = declared_length(request)
    if declared is not None and declared > limit:
        raise TooLarge(f"{noun} declares {declared} bytes, more than the {limit} bytes allowed")


class BodyReader:
    """Reads one request's body; what arrived stays on it for the refusal that may follow."""

    def __init__(self, request: Request, *, keep: int, idle: float, deadline: float) -> None:
        self._receive = request.receive
        self._keep, self._idle = keep, idle
        self._deadline = time.monotonic() + deadline
        self._digest = hashlib.sha256()
        self.size = 0
        self.head = b""  # the first `keep` bytes
        self.complete = False

    @property
    def sha256(self) -> str:
        return self._digest.hexdigest()

    async def read(self, limit: int, sink: Callable[[bytes], None], noun: str) -> None:
        """Hand the whole body to ``sink`` in blocks; raises :class:`TooLarge` past ``limit``
        bytes, :class:`BodyTimeout` on a stall, or what ``sink`` raises (its checks)."""
        pending: list[bytes] = []
        pending_size = 0
        while not self.complete:
            chunk = await self._next_chunk()
            if self.size + len(chunk) > limit:
                self._account(chunk[: limit - self.size])
                raise TooLarge(f"{noun} is larger than {limit} bytes")
            self._account(chunk)
            pending.append(chunk)
            pending_size += len(chunk)
            if pending_size >= BLOCK_BYTES or self.complete:
                block = b"".join(pending)
                pending, pending_size = [], 0
                await run_in_threadpool(sink, block)

    async def read_head(self) -> None:
        """Read only the first ``keep`` bytes (evidence of a body refused before it was read).
        A stall or a disconnect ends it quietly: what arrived is all there is to keep."""
        try:
            while not self.complete and self.size < self._keep:
                self._account(await self._next_chunk())
        except (BodyTimeout, BodyIncomplete):
            pass

    def _account(self, chunk: bytes) -> None:
        self._digest.update(chunk)
        if len(self.head) < self._keep:
            self.head += chunk[: self._keep - len(self.head)]
        self.size += len(chunk)

    async def _next_chunk(self) -> bytes:
        left = self._deadline - time.monotonic()
        try:
            message = await asyncio.wait_for(self._receive(), max(0.0, min(self._idle, left)))
        except TimeoutError:
            raise BodyTimeout(
                f"the body stalled: nothing arrived for {self._idle:g} s"
                if left > self._idle
                else "the body took longer than the gateway's deadline to arrive"
            ) from None
        if message["type"] == "http.disconnect":
            raise BodyIncomplete("the client went away before the body was complete")
        self.complete = not message.get("more_body", False)
        return message.get("body", b"")
