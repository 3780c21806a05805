"""Secret hygiene for the API connectors: URLs and texts with their secrets replaced by ``***``,
and a log filter doing the same on the ``httpx`` and connector loggers (installed on import)."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from urllib.parse import quote, quote_plus

import httpx

log = logging.getLogger("mlsec.connectors")

#: Query parameters whose values are secrets, compared case-insensitively.
SENSITIVE_PARAMS: frozenset[str] = frozenset(
    {
        "appid",
        "api_key",
        "apikey",
        "key",
        "token",
        "access_token",
        "client_secret",
        "password",
        "secret",
        "signature",
        "sig",
    }
)
REDACTED = "***"

_SENSITIVE_QUERY = re.compile(
    r"(?i)([?&;](?:" + "|".join(re.escape(p) for p in sorted(SENSITIVE_PARAMS)) + r")=)"
    r"[^&#\s'\"<>]*"
)
_USERINFO = re.compile(r"(?i)(\b[a-z][a-z0-9+.-]*://)[^/@\s?#]+@")


def redact_url(url: httpx.URL | str) -> str:
    """The URL as text with sensitive query parameters and any user:password replaced by ***."""
    return redact_text(str(url))


def redact_text(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with sensitive query parameters redacted and every known secret value removed.

    A secret is also removed in its URL-encoded forms, since it may have been echoed from a URL.
    """
    text = _SENSITIVE_QUERY.sub(lambda m: m.group(1) + REDACTED, text)
    text = _USERINFO.sub(lambda m: m.group(1) + REDACTED + "@", text)
    for secret in secrets:
        if not secret:
            continue
        for form in {secret, quote(secret, safe=""), quote_plus(secret)}:
            text = text.replace(form, REDACTED)
    return text


class RedactingFilter(logging.Filter):
    """Rewrites a log record's message with sensitive query parameters redacted."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record is the logging module's business, not ours
            return True
        redacted = redact_text(message)
        if redacted != message:
            record.msg, record.args = redacted, ()
        return True


def _install_log_redaction() -> None:
    # httpx logs "HTTP Request: GET <full url> ..." at INFO on the "httpx" logger. Logger filters
    # only see records created by that very logger, which is the case here; httpcore's DEBUG
    # traces do not print URLs.
    for name in ("httpx", log.name):
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactingFilter) for f in logger.filters):
            logger.addFilter(RedactingFilter())


_install_log_redaction()
