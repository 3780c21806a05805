"""The base of the clients of the platform's HTTP services (the broker's SDK, the gateway's)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Self

import httpx

#: A bearer token, or a callable asked for one afresh per request (so it may refresh).
Token = str | Callable[[], str]


class ServiceClient:
    """One service over HTTP: its base URL, a connection pool and the caller's bearer token.
    Use as a context manager or call :meth:`close`."""

    def __init__(
        self,
        url: str,
        token: Token,
        *,
        timeout: float,
        user_agent: str,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = url
        self._token = token
        self._http = httpx.Client(
            base_url=url,
            timeout=timeout,
            transport=transport,
            headers={"Accept": "application/json", "User-Agent": user_agent},
        )

    def _bearer(self) -> dict[str, str]:
        """The Authorization header of the next request."""
        token = self._token() if callable(self._token) else self._token
        return {"Authorization": f"Bearer {token}"}

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
