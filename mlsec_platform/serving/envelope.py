"""The request envelope both HTTP services share: what is decided about a request before (and
regardless of) what it asks for.

- A cap on the body, checked on the declared Content-Length before reading and on the bytes
  as they arrive, so a large body is refused without being read or parsed.
- A limit per client address on refusals of unauthenticated requests, applied before
  authentication: once an address has drawn its burst of refusals (bad tokens, unknown
  routes: ``CHARGED_STATUSES``), its requests are refused with 429 without verifying a
  token or touching a server.
- Folding of identical refusals: a flood of them from one address within a short window is
  recorded as one audit event carrying their count and first and last request ids, instead
  of one serialized, durable commit each. Each folded request still waits for the commit of
  the event that counts it, so no answer leaves before its record exists (fail closed).

The limiter and the folder hold state per process (one per service instance); they are cheap
refusals in front of the per-subject limits, not a replacement for them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable, Mapping
from typing import Any

import orjson

from mlsec_platform.errors import MlsecError


class BodyTooLarge(MlsecError, ValueError):
    """A request body over the service's cap (413); the message names the cap."""

    http_status = 413


def body_cap_reason(limit: int) -> str:
    return f"request body is larger than the limit of {limit} bytes"


def declared_length(headers: list[tuple[bytes, bytes]]) -> int | None:
    """The body's Content-Length as the request declares it (None: not declared or not a
    number, in which case the streaming cap still applies)."""
    for name, value in headers:
        if name.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


class CappedReceive:
    """An ASGI ``receive`` that counts body bytes and raises :class:`BodyTooLarge` once they
    pass ``limit``; ``exceeded`` tells the envelope to answer 413 whatever the app made of
    the exception (FastAPI turns a failed body read into its own 400)."""

    __slots__ = ("_receive", "_limit", "_seen", "exceeded")

    def __init__(self, receive: Callable[[], Awaitable[dict]], limit: int) -> None:
        self._receive, self._limit, self._seen, self.exceeded = receive, limit, 0, False

    async def __call__(self) -> dict:
        message = await self._receive()
        if message["type"] == "http.request":
            self._seen += len(message.get("body", b""))
            if self._seen > self._limit:
                self.exceeded = True
                raise BodyTooLarge(body_cap_reason(self._limit))
        return message


class ClientLimiter:
    """A token bucket per client address, spent by refusals of unauthenticated requests.

    ``retry_after`` is checked before authentication; ``charge`` is called once such a refusal
    is known. An address that never draws a refusal costs one dictionary lookup a request.
    ``burst`` 0 switches the limit off."""

    def __init__(self, burst: int, rate: float, *, max_clients: int = 100_000) -> None:
        self._burst, self._rate, self._max_clients = float(burst), max(rate, 1e-6), max_clients
        self._buckets: dict[str, tuple[float, float]] = {}  # address -> (tokens, at)

    def _tokens(self, bucket: tuple[float, float], now: float) -> float:
        return min(self._burst, bucket[0] + (now - bucket[1]) * self._rate)

    def retry_after(self, client: str | None) -> float | None:
        """Seconds until ``client`` may be answered again, or None when it may be now."""
        if self._burst <= 0 or client is None:
            return None
        bucket = self._buckets.get(client)
        if bucket is None:
            return None
        tokens = self._tokens(bucket, time.monotonic())
        return None if tokens >= 1 else (1 - tokens) / self._rate

    def charge(self, client: str | None) -> None:
        """Spend one refusal of ``client``."""
        if self._burst <= 0 or client is None:
            return
        now = time.monotonic()
        bucket = self._buckets.get(client)
        tokens = self._burst if bucket is None else self._tokens(bucket, now)
        self._buckets[client] = (tokens - 1, now)
        if len(self._buckets) > self._max_clients:  # forget addresses that are whole again
            self._buckets = {
                c: b for c, b in self._buckets.items() if self._tokens(b, now) < self._burst
            }


class _Window:
    __slots__ = ("event", "count", "last_request_id", "done", "loop", "handle")

    def __init__(self, event: dict, loop: asyncio.AbstractEventLoop) -> None:
        self.event, self.count, self.loop = event, 1, loop
        self.last_request_id = event.get("request_id")
        self.done: asyncio.Future[str] = loop.create_future()
        self.handle: asyncio.TimerHandle | None = None


class RefusalFolder:
    """Records identical refusals within ``window`` seconds as one event.

    The first refusal of a key opens a window; the ones that follow in it only count. When
    the window ends (or holds ``max_count``), one event is recorded through ``record``: the
    first refusal's event plus ``count``, ``last_request_id`` and ``window_seconds``. Every
    request of the window waits for that commit and fails with it (503 from the caller)."""

    def __init__(
        self,
        record: Callable[[dict], Awaitable[str]],
        *,
        window: float,
        max_count: int = 1_000,
    ) -> None:
        self._record, self._window, self._max_count = record, window, max_count
        self._open: dict[Hashable, _Window] = {}
        self._writing: set[asyncio.Task] = set()

    async def record(self, key: Hashable, event: dict) -> str:
        """Record ``event`` (a refusal), folded with those of the same ``key``; returns the id
        of the event that counts it once committed."""
        if self._window <= 0:
            return await self._record({**event, "count": 1})
        loop = asyncio.get_running_loop()
        window = self._open.get(key)
        if window is None or window.loop is not loop or window.done.done():
            window = self._open[key] = _Window(event, loop)
            window.handle = loop.call_later(self._window, self._close, key, window)
        else:
            window.count += 1
            window.last_request_id = event.get("request_id")
            if window.count >= self._max_count:
                window.handle.cancel()
                self._close(key, window)
        return await asyncio.shield(window.done)

    def _close(self, key: Hashable, window: _Window) -> None:
        if self._open.get(key) is window:
            del self._open[key]
        event = {
            **window.event,
            "count": window.count,
            "last_request_id": window.last_request_id,
            "window_seconds": self._window,
        }
        task = asyncio.ensure_future(self._record(event))
        self._writing.add(task)
        task.add_done_callback(lambda t: self._settle(t, window))

    def _settle(self, task: asyncio.Task, window: _Window) -> None:
        self._writing.discard(task)
        if window.done.done():
            return
        if task.cancelled():
            window.done.set_exception(asyncio.CancelledError())
        elif task.exception() is not None:
            window.done.set_exception(task.exception())
        else:
            window.done.set_result(task.result())


def plain(status: int, body: Mapping[str, Any], headers: Mapping[str, str] | None = None) -> list:
    """The ASGI messages of a small JSON answer the envelope gives itself."""
    payload = orjson.dumps(body)
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    raw += [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    return [
        {"type": "http.response.start", "status": status, "headers": raw},
        {"type": "http.response.body", "body": payload, "more_body": False},
    ]


#: The refusals that spend an address's budget: no valid identity (401), or probing for what
#: is not there (404, 405). Malformed input refused before the caller is known (400, 413, 422)
#: is folded like them but not charged: a legitimate client with a bug would otherwise lock
#: out everyone behind its address.
CHARGED_STATUSES = frozenset({401, 404, 405})

#: The reason of a request refused by :class:`ClientLimiter`.
TOO_MANY_REFUSALS = "too many refused requests from this address; retry later"
