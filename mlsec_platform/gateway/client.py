"""A small client of the ingestion gateway (the demo, tests and benchmarks upload with it)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import islice

import orjson

from mlsec_platform.serving.client import ClientTls, ServiceClient, Token


class GatewayClient(ServiceClient):
    """Uploads and publishes as the holder of ``token`` over the connection of its client
    certificate (``tls``); a refusal raises ``httpx.HTTPStatusError`` (its response holds the
    gateway's ``Refusal``)."""

    def __init__(
        self, url: str, token: Token, timeout: float = 600.0, tls: ClientTls | None = None
    ) -> None:
        super().__init__(url, token, timeout=timeout, user_agent="mlsec-gateway-client", tls=tls)

    def upload_file(self, source: str, body: bytes) -> dict:
        response = self._http.put(
            f"/v1/files/{source}",
            content=body,
            headers={**self._bearer(), "Content-Type": "text/csv"},
        )
        response.raise_for_status()
        return response.json()

    def publish_events(
        self, domain: str, events: Iterable[dict], chunk: int = 10_000
    ) -> Iterator[dict]:
        """Publish in requests of ``chunk`` events; yields each request's answer."""
        iterator = iter(events)
        while batch := list(islice(iterator, chunk)):
            response = self._http.post(
                f"/v1/events/{domain}",
                content=orjson.dumps(batch),
                headers={**self._bearer(), "Content-Type": "application/json"},
            )
            response.raise_for_status()
            yield response.json()
