"""Replays recorded HTTP answers through the real client code (an ``httpx.MockTransport``).

A recording is a JSON document::

    {"request":  {"method": "GET", "url_path": "/data/2.5/weather",
                  "query": {"q": "São Paulo,BR", "appid": "***", ...}},
     "response": {"status": 200, "headers": {...}, "body": <JSON value or text>}}

or, to simulate a transport failure, ``"error": "ConnectError"`` (any ``httpx`` exception name)
instead of ``"response"``. A request matches a recording when the method and path are equal and
every query parameter the recording lists has the same value; parameters the recording does not
list are not compared. Secret parameters (``appid``...) match any non-empty value: recordings
keep them redacted, and tests assert on :attr:`Replay.requests` that the real key was sent.

Recordings that match the same request are served in order, and the last one keeps being served
once the others are used up: ``[503, 200]`` gives a 503 then 200s, ``[503]`` gives 503s forever.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

RECORDINGS = Path(__file__).parent / "recordings"

#: Query parameters that match any non-empty value (their recorded value is redacted).
MATCH_ANY = frozenset({"appid"})


def load(name: str) -> dict[str, Any]:
    """A recording from the recordings folder."""
    return json.loads((RECORDINGS / name).read_text(encoding="utf-8"))


def recording(
    path: str,
    *,
    status: int = 200,
    body: Any = None,
    headers: dict[str, str] | None = None,
    query: dict[str, str] | None = None,
    method: str = "GET",
) -> dict[str, Any]:
    """A recording built in a test (same format as the files)."""
    return {
        "request": {"method": method, "url_path": path, "query": dict(query or {})},
        "response": {"status": status, "headers": dict(headers or {}), "body": body},
    }


def failure(
    path: str, error: str = "ConnectError", *, query: dict[str, str] | None = None
) -> dict[str, Any]:
    """A recording whose request fails in the transport with ``httpx.<error>``."""
    return {
        "request": {"method": "GET", "url_path": path, "query": dict(query or {})},
        "error": error,
    }


def with_query(rec: dict[str, Any], **query: str) -> dict[str, Any]:
    """A copy of ``rec`` that matches on a different query."""
    return {**rec, "request": {**rec["request"], "query": dict(query)}}


class Replay:
    """Serves recordings and remembers every request it was sent."""

    def __init__(self, *recordings: dict[str, Any]) -> None:
        self.recordings = list(recordings)
        self.requests: list[httpx.Request] = []
        self._used: set[int] = set()

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def _matches(self, rec: dict[str, Any], request: httpx.Request) -> bool:
        wanted = rec["request"]
        if wanted.get("method", "GET").upper() != request.method:
            return False
        if wanted["url_path"] != request.url.path:
            return False
        params = request.url.params
        for name, value in wanted.get("query", {}).items():
            sent = params.get(name)
            if name in MATCH_ANY:
                if not sent:
                    return False
            elif sent != str(value):
                return False
        return True

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        candidates = [i for i, rec in enumerate(self.recordings) if self._matches(rec, request)]
        if not candidates:
            shown = f"{request.url.scheme}://{request.url.host}{request.url.path}"
            names = sorted(request.url.params.keys())
            raise AssertionError(f"no recording for {request.method} {shown} (params {names})")
        fresh = [i for i in candidates if i not in self._used]
        index = fresh[0] if fresh else candidates[-1]
        self._used.add(index)
        rec = self.recordings[index]

        if "error" in rec:
            # Worst case on purpose: the message carries the full URL, secrets included.
            raise getattr(httpx, rec["error"])(
                f"simulated {rec['error']} for {request.url}", request=request
            )
        response = rec["response"]
        headers = dict(response.get("headers", {}))
        body = response.get("body")
        if isinstance(body, str):
            content = body.encode("utf-8")
        elif body is None:
            content = b""
        else:
            content = json.dumps(body, ensure_ascii=False).encode("utf-8")
            if not any(k.lower() == "content-type" for k in headers):
                headers["Content-Type"] = "application/json; charset=utf-8"
        return httpx.Response(response["status"], headers=headers, content=content)

    def params(self, index: int = -1) -> dict[str, str]:
        """The query parameters of a request that was made."""
        return dict(self.requests[index].url.params)


class FakeTime:
    """A clock and a sleep for the client: sleeping advances the clock and is recorded."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
