"""The API connectors' errors: typed by what went wrong, and never carrying a secret."""

from __future__ import annotations

from mlsec_platform.errors import MlsecError


class ApiError(MlsecError, RuntimeError):
    """Base of the connectors' API errors. Messages never contain secrets."""

    http_status = 502

    def __init__(self, message: str, *, url: str | None = None, status: int | None = None):
        super().__init__(message)
        #: The request URL with sensitive query parameters redacted (or None).
        self.url = url
        #: The last HTTP status received (or None when no response came back).
        self.status = status


class InsecureEndpoint(ApiError):
    """The endpoint is not HTTPS (or a request would leave the configured HTTPS host)."""


class ApiUnavailable(ApiError):
    """The API did not answer usefully within the retry budget (network, 5xx, 429)."""

    def __init__(
        self,
        message: str,
        *,
        url: str | None = None,
        status: int | None = None,
        attempts: int = 0,
    ):
        super().__init__(message, url=url, status=status)
        self.attempts = attempts


class ApiRejected(ApiError):
    """The API refused the request (4xx other than 429): retrying would not help."""


class ApiSchemaError(ApiError):
    """The response does not have the shape the connector's contract expects."""


class MissingApiKey(ApiError):
    """The connector needs an API key and none was provided."""
