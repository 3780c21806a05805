"""Request lines: only the known fields, only scalars, one handler per stream."""

from __future__ import annotations

import io
import json
import logging

from mlsec_platform.telemetry.request_log import LOGGER, RequestLog, decision, log_requests_to


def test_only_known_scalar_fields_are_written() -> None:
    stream = io.StringIO()
    logger = logging.getLogger("test-request-log-fields")
    logger.addHandler(logging.StreamHandler(stream))
    logger.setLevel(logging.INFO)
    logger.propagate = False
    RequestLog("broker", logger).write(
        {
            "request_id": "r1",
            "status": 200,
            "subject": "ana",
            "filters": [{"column": "cpf", "value_sha256": "abc"}],  # not a field: dropped
            "authorization": "Bearer secret-token",  # not a field: dropped
            "dataset": {"nested": "x"},  # a field, but not a scalar: dropped
            "latency_ms": 1.5,
        }
    )
    (line,) = [json.loads(x) for x in stream.getvalue().splitlines()]
    assert set(line) == {"ts", "service", "request_id", "status", "subject", "latency_ms"}
    assert "secret-token" not in stream.getvalue() and "abc" not in stream.getvalue()


def test_one_handler_per_stream() -> None:
    stream = io.StringIO()
    first, second = log_requests_to(stream), log_requests_to(stream)
    try:
        assert first is second
        RequestLog("gateway").write({"request_id": "r2", "status": 401})
        assert len(stream.getvalue().splitlines()) == 1
    finally:
        logging.getLogger(LOGGER).removeHandler(first)


def test_decision() -> None:
    assert [decision(s) for s in (200, 307, 403, 429, 503)] == [
        "allowed",
        "allowed",
        "denied",
        "denied",
        "error",
    ]
