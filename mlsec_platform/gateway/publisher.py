"""The gateway's connection to the message server, for publishing checked events.

The message server closes a connection on a protocol error (a message over its max_payload
is one), and the NATS client does not reconnect after such a close: kept as it was, one
caller's bad request would fail every later event from anyone until the gateway restarted.
So batches are checked against the server's own limits before anything is published
(``sources.event_batch.encode_events``), a connection found closed is reopened, and a batch
whose acknowledgements do not come answers 503 (the caller retries; the stream's duplicate
window makes that harmless) instead of holding the request forever.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

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

    async def publish(self, subject: str, messages: list[EventMessage]) -> list[PubAck]:
        """Publish all of an encoded batch and wait for the stream's acknowledgements."""
        _, js = await self._open()
        try:
            futures = [
                await js.publish_async(subject, message.payload, headers=message.headers)
                for message in messages
            ]
            return list(await asyncio.wait_for(asyncio.gather(*futures), timeout=self._ack_timeout))
        except (TimeoutError, NatsError) as exc:
            await self.close()  # whatever state it is in, the next request starts afresh
            raise MessageServerUnavailable(
                f"the message server did not acknowledge the events ({type(exc).__name__}); "
                "retry: events it already stored are recognised by their event_id"
            ) from None

    async def close(self) -> None:
        nc, self._nc, self._js = self._nc, None, None
        if nc is not None and not nc.is_closed:
            try:
                await nc.drain()
            except NatsError:
                await nc.close()
