"""Signed page cursors: they pin the snapshot and bind to the query and the subject.

A cursor is ``base64url(payload) . base64url(HMAC-SHA256(key, payload))``. The key comes from
OpenBao at start; a cursor is refused when its signature, subject, query or expiry does not
match, so a client can neither forge an offset nor replay another subject's page. The page
size is not part of the query it binds to (see :func:`query_fingerprint`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from dataclasses import dataclass

import orjson

from broker_api.errors import RequestRefused
from broker_api.models import QueryRequest


class InvalidCursor(RequestRefused, ValueError):
    """The cursor was not issued by this broker for this query and subject, or expired."""

    http_status = 400


@dataclass(frozen=True)
class Page:
    version: int
    offset: int


def query_fingerprint(request: QueryRequest) -> str:
    """What a cursor binds to: the request without its cursor, its pinned version (the cursor
    pins its own) and its page size. The rows a page starts from are the query's alone, so a
    client may resume at another page size (e.g. fetch only the rows it still wants)."""
    body = request.model_dump(mode="json", exclude={"cursor", "version", "limit"})
    return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()[:32]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class CursorSigner:
    def __init__(self, key: bytes, ttl_seconds: int = 3600) -> None:
        if len(key) < 32:
            raise ValueError("the cursor key must be at least 32 bytes")
        self._key = key
        self._ttl = ttl_seconds

    def _mac(self, payload: bytes) -> bytes:
        return hmac.new(self._key, payload, hashlib.sha256).digest()

    def issue(self, request: QueryRequest, subject: str, page: Page) -> str:
        payload = orjson.dumps(
            {
                "v": page.version,
                "o": page.offset,
                "q": query_fingerprint(request),
                "s": hashlib.sha256(subject.encode()).hexdigest()[:16],
                "e": int(time.time()) + self._ttl,
            }
        )
        return f"{_b64(payload)}.{_b64(self._mac(payload))}"

    def open(self, cursor: str, request: QueryRequest, subject: str) -> Page:
        try:
            encoded, _, signature = cursor.partition(".")
            payload = _unb64(encoded)
            if not hmac.compare_digest(self._mac(payload), _unb64(signature)):
                raise InvalidCursor("cursor signature does not verify")
            data = orjson.loads(payload)
        except InvalidCursor:
            raise
        except (ValueError, TypeError):
            raise InvalidCursor("malformed cursor") from None
        if data["s"] != hashlib.sha256(subject.encode()).hexdigest()[:16]:
            raise InvalidCursor("cursor was issued to another subject")
        if data["q"] != query_fingerprint(request):
            raise InvalidCursor("cursor belongs to a different query")
        if data["e"] < time.time():
            raise InvalidCursor("cursor expired")
        if request.version is not None and request.version != data["v"]:
            raise InvalidCursor("cursor pins another version")
        return Page(version=int(data["v"]), offset=int(data["o"]))
