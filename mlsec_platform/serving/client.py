"""The base of the clients of the platform's HTTP services (the broker's SDK, the gateway's).

The services speak TLS only and ask every client for a certificate of the platform CA
(mTLS): :class:`ClientTls` names the CA to trust and the client's certificate and key, by
hand or from ``MLSEC_CA_BUNDLE``, ``MLSEC_CLIENT_CERT`` and ``MLSEC_CLIENT_KEY``
(`mlsec cert issue --shell` prints them).
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Self

import httpx

from mlsec_platform.errors import ConfigurationError

#: A bearer token, or a callable asked for one afresh per request (so it may refresh).
Token = str | Callable[[], str]

#: The environment a client's TLS settings are read from.
CA_BUNDLE_ENV, CLIENT_CERT_ENV, CLIENT_KEY_ENV = (
    "MLSEC_CA_BUNDLE",
    "MLSEC_CLIENT_CERT",
    "MLSEC_CLIENT_KEY",
)


@dataclass(frozen=True)
class ClientTls:
    """The CA a client trusts and the certificate (and key) it presents, as PEM files."""

    ca_bundle: Path
    certificate: Path | None = None
    key: Path | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ClientTls:
        """From ``MLSEC_CA_BUNDLE``, ``MLSEC_CLIENT_CERT`` and ``MLSEC_CLIENT_KEY``."""
        env = os.environ if environ is None else environ
        missing = [name for name in (CA_BUNDLE_ENV, CLIENT_CERT_ENV) if not env.get(name)]
        if missing:
            raise ConfigurationError(
                f'{" and ".join(missing)} not set: `eval "$(mlsec cert issue --subject YOU '
                '--out DIR --shell)"` issues a client certificate and sets them'
            )
        key = env.get(CLIENT_KEY_ENV)
        return cls(Path(env[CA_BUNDLE_ENV]), Path(env[CLIENT_CERT_ENV]), Path(key) if key else None)

    def ssl_context(self) -> ssl.SSLContext:
        """Verifies the server against the CA (and its name), presents the certificate."""
        context = ssl.create_default_context(cafile=str(self.ca_bundle))
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        if self.certificate is not None:
            context.load_cert_chain(str(self.certificate), str(self.key) if self.key else None)
        return context


class ServiceClient:
    """One service over HTTPS: its base URL, a connection pool, the caller's bearer token and
    client certificate (``tls``; default :meth:`ClientTls.from_env` for an https URL). Use as
    a context manager or call :meth:`close`."""

    def __init__(
        self,
        url: str,
        token: Token,
        *,
        timeout: float,
        user_agent: str,
        tls: ClientTls | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = url
        self._token = token
        if tls is None and url.startswith("https:") and transport is None:
            tls = ClientTls.from_env()
        self._http = httpx.Client(
            base_url=url,
            timeout=timeout,
            transport=transport,
            verify=tls.ssl_context() if tls is not None else True,
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
