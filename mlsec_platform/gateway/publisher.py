"""The gateway's connection to the message server, for publishing checked events.

The message server closes a connection on a protocol error (a message over its max_payload
is one), and the NATS client does not reconnect after such a close: kept as it was, one
caller's bad request would fail every later event from anyone until the gateway restarted.
So batches are checked against the server's own limits before anything is published
(``sources.event_batch``), a connection found closed is reopened, and a batch whose
acknowledgements do not come answers 503 (the caller retries; the stream's duplicate window
makes that harmless) instead of holding the request forever.

A batch is published from its spool with at most ``ACKS_IN_FLIGHT`` acknowledgements awaited
at once, each tallied as it comes: memory does not grow with the batch here either.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import nats
from fastapi.concurrency import run_in_threadpool
from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from nats.js.api import PubAck

from mlsec_platform.errors import Unavailable
from mlsec_platform.sources import event_stream
from mlsec_platform.sources.event_batch import EventMessage


class MessageServerUnavailable(Unavailable):
    """The message server did not take a batch; nothing the caller sent caused it."""


#: Acknowledgements awaited at once while a batch is published (the client's own limit, after
#: which it would wait without a timeout, is 4,000).
ACKS_IN_FLIGHT = 2000


@dataclass(frozen=True)
class Published:
    """What the stream did with a batch: how many messages, and how many it had already."""

    count: int
    duplicates: int


class EventPublisher:
    """One long-lived connection (and its JetStream context), reopened after it closed."""

    def __init__(self, url: str, credentials: Callable[[], dict], ack_timeout: float) -> None:
        self._url = url
        self._ack_timeout = ack_timeout  # for all acknowledgements of one batch (s)
        self._credentials = credentials  # read from OpenBao on each (re)connect
        self._nc: nats.NATS | None = None
        self._js: JetStreamContext | None = None
        self._lock = asyncio.Lock()

    async def _open(self) -> tuple[nats.NATS, JetStreamContext]:
        nc, js = self._nc, self._js
        if nc is not None and js is not None and not nc.is_closed:
            return nc, js
        async with self._lock:
            if self._nc is None or self._js is None or self._nc.is_closed:
                credentials = await run_in_threadpool(self._credentials)
                nc = await event_stream.connect(self._url, credentials, long_lived=True)
                # One context per connection: each holds its own reply subscription.
                self._nc, self._js = nc, nc.jetstream()
            return self._nc, self._js

    async def start(self) -> None:
        await self._open()

    async def max_payload(self) -> int:
        """The largest message (headers and payload) the server takes, as it announced."""
        nc, _ = await self._open()
        return nc.max_payload

    async def publish(self, subject: str, messages: Iterable[EventMessage]) -> Published:
        """Publish every message of a checked batch and wait for the stream's
        acknowledgements; each may take ``ack_timeout`` seconds at most."""
        _, js = await self._open()
        pending: deque[asyncio.Future[PubAck]] = deque()
        count = duplicates = 0
        try:
            for message in messages:
                if len(pending) >= ACKS_IN_FLIGHT:
                    duplicates += await self._acknowledged(pending.popleft())
                pending.append(
                    await js.publish_async(subject, message.payload, headers=message.headers)
                )
                count += 1
            while pending:
                duplicates += await self._acknowledged(pending.popleft())
        except (TimeoutError, NatsError) as exc:
            await self.close()  # whatever state it is in, the next request starts afresh
            raise MessageServerUnavailable(
                f"the message server did not acknowledge the events ({type(exc).__name__}); "
                "retry: events it already stored are recognised by their event_id"
            ) from None
        return Published(count, duplicates)

    async def _acknowledged(self, future: asyncio.Future[PubAck]) -> bool:
        """Whether the stream had the message already (a duplicate id)."""
        if not future.done():  # wait_for costs a timer: only for what has not come yet
            await asyncio.wait_for(future, self._ack_timeout)
        return bool(future.result().duplicate)  # None when it is not one

    async def close(self) -> None:
        nc, self._nc, self._js = self._nc, None, None
        if nc is not None and not nc.is_closed:
            try:
                await nc.drain()
            except NatsError:
                await nc.close()
