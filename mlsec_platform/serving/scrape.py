"""The credential a Prometheus scraper sends to a service's ``/metrics`` (broker, gateway):
their counters name datasets, refusal kinds and load, which are for the people who run the
service, not for every caller of its API."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

from fastapi.responses import JSONResponse, Response
from prometheus_client import CollectorRegistry, generate_latest

from mlsec_platform.errors import ConfigurationError

#: The text exposition format ``generate_latest`` writes.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

#: A shorter scrape credential is refused at start: it could be guessed.
MIN_CREDENTIAL_CHARS = 16


class ScrapeCredential:
    """The bearer credential a scraper sends to ``/metrics``, read from a file at start (as
    Prometheus reads it, ``authorization.credentials_file``). Without one, ``/metrics`` is
    refused to everyone (fail closed). Only its digest is held, and compared in constant time.
    """

    #: The setting that names the credential file (said in the refusal when none is set).
    setting = "the service's metrics credential file"

    def __init__(self, credential: str | None) -> None:
        self._digest = _digest(credential) if credential else None

    @classmethod
    def from_file(cls, path: Path | None) -> ScrapeCredential:
        """The credential in ``path`` (surrounding whitespace ignored); none for None."""
        if path is None:
            return cls(None)
        try:
            credential = Path(path).read_text().strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigurationError(
                f"cannot read the metrics scrape credential file {path}: {type(exc).__name__}"
            ) from None
        if len(credential) < MIN_CREDENTIAL_CHARS:
            raise ConfigurationError(
                f"the metrics scrape credential in {path} must be at least "
                f"{MIN_CREDENTIAL_CHARS} characters"
            )
        return cls(credential)

    def refusal(self, authorization: str | None) -> tuple[int, str] | None:
        """None for a request that carries the credential; else the status and reason to
        refuse it with (403 when the service has none configured, else 401)."""
        if self._digest is None:
            return 403, f"/metrics is not served without a scrape credential ({self.setting})"
        scheme, _, credential = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            _digest(credential.strip()), self._digest
        ):
            return 401, "/metrics needs the scrape credential"
        return None


def _digest(credential: str) -> bytes:
    return hashlib.sha256(credential.encode("utf-8", "surrogatepass")).digest()


class MetricsScrapeCredential(ScrapeCredential):
    """The credential of the gateway's ``/metrics`` and of `mlsec metrics` (pipeline runs)."""

    setting = "MLSEC_METRICS_CREDENTIAL_FILE"


def metrics_response(
    credential: ScrapeCredential, authorization: str | None, registry: CollectorRegistry
) -> Response:
    """The answer to a scrape of ``registry``: the metrics for the holder of ``credential``,
    else its refusal (401 asking for the bearer credential, or 403 when none is configured)."""
    refusal = credential.refusal(authorization)
    if refusal is not None:
        status, reason = refusal
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        return JSONResponse({"status": status, "reason": reason}, status, headers)
    return Response(generate_latest(registry), media_type=CONTENT_TYPE)
