"""Who the client of a request is: the socket peer, unless an operator trusts a proxy."""

from __future__ import annotations

import httpx

from mlsec_platform.serving.server import BackgroundServer
from mlsec_platform.stack.ports import PortAllocator


async def _echo_client(scope, receive, send) -> None:
    """A bare ASGI app that answers with the client address uvicorn gave the request."""
    if scope["type"] != "http":
        return
    body = (scope["client"][0] if scope.get("client") else "").encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


def _client_seen(**server_args) -> str:
    with BackgroundServer(_echo_client, PortAllocator().take(), name="echo", **server_args) as s:
        response = httpx.get(s.url, headers={"X-Forwarded-For": "203.0.113.9"}, timeout=10)
    return response.text


def test_a_forwarded_header_cannot_name_the_client() -> None:
    assert _client_seen() == "127.0.0.1"


def test_a_trusted_proxy_names_the_client() -> None:
    assert _client_seen(trusted_proxies=("127.0.0.1",)) == "203.0.113.9"
