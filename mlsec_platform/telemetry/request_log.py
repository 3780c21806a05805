"""One JSON line per request, for the gateway and the broker (logger ``mlsec.requests``).

A line says which request (its id, the id of its audit event's decision), who (subject), what
(method, route template, dataset), what was decided (``decision``, ``status``) and how long it
took. Only the fields named in :data:`FIELDS` are written, and only scalars: a request's
token, its body, its filter values and the rows it got back never reach a line (the audit log
keeps fingerprints of values; this log keeps none).

The services' own commands (`mlsec broker`, `mlsec gateway`) send these lines to standard
error; in-process servers (demo, tests) leave the logger unconfigured unless a test listens.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import IO, Any

import orjson

LOGGER = "mlsec.requests"
#: What a request line may say, in this order.
FIELDS = (
    "request_id",
    "method",
    "route",
    "status",
    "decision",
    "subject",
    "project",
    "purpose",
    "dataset",
    "decision_id",
    "rows",
    "bytes_in",
    "latency_ms",
)
_SCALARS = (str, int, float, bool)


class RequestLog:
    """Writes the request lines of one service."""

    def __init__(self, service: str, logger: logging.Logger | None = None) -> None:
        self.service = service
        self.logger = logger or logging.getLogger(LOGGER)

    def write(self, fields: Mapping[str, Any]) -> None:
        """One line of ``fields`` (the known ones only, scalars only)."""
        if not self.logger.isEnabledFor(logging.INFO):
            return
        line: dict[str, Any] = {"ts": datetime.now(UTC).isoformat(), "service": self.service}
        for name in FIELDS:
            value = fields.get(name)
            if isinstance(value, _SCALARS):
                line[name] = value[:256] if isinstance(value, str) else value
        self.logger.info(orjson.dumps(line).decode())


def log_requests_to(stream: IO[str] = sys.stderr) -> logging.Handler:
    """Send request lines to ``stream``, as they are (each already one JSON document)."""
    logger = logging.getLogger(LOGGER)
    for handler in logger.handlers:  # once per stream, however often a service is served
        if isinstance(handler, logging.StreamHandler) and handler.stream is stream:
            return handler
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False  # no second, differently formatted copy through the root logger
    return handler


def decision(status: int) -> str:
    """``allowed`` for an answer with data or an acceptance, ``denied`` for a refusal,
    ``error`` for a server-side failure."""
    if status >= 500:
        return "error"
    return "allowed" if status < 400 else "denied"
