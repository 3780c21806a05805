"""A small client of the ingestion gateway (the demo, tests and benchmarks upload with it)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import islice

import httpx
import orjson


class GatewayClient:
    def __init__(self, url: str, token: str, timeout: float = 600.0) -> None:
        self._http = httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=timeout
        )

    def upload_file(self, source: str, body: bytes) -> dict:
        response = self._http.put(f"/v1/files/{source}", content=body,
                                  headers={"Content-Type": "text/csv"})  # fmt: skip
        response.raise_for_status()
        return response.json()

    def publish_events(
        self, domain: str, events: Iterable[dict], chunk: int = 10_000
    ) -> Iterator[dict]:
        """Publish in requests of ``chunk`` events; yields each request's answer."""
        iterator = iter(events)
        while batch := list(islice(iterator, chunk)):
            response = self._http.post(f"/v1/events/{domain}", content=orjson.dumps(batch),
                                       headers={"Content-Type": "application/json"})  # fmt: skip
            response.raise_for_status()
            yield response.json()

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> GatewayClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
