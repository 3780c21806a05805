"""The gateway's OpenAPI document as a contract: requests generated from it, valid (positive)
and invalid (negative: data that breaks the schema), sent to the real gateway over HTTPS with
its real services behind it, never make it answer with a server error."""

from __future__ import annotations

import schemathesis

from mlsec_platform.gateway.server import BackgroundGateway
from mlsec_platform.stack.ports import PortAllocator
from mlsec_platform_tests.broker_api.test_openapi import fuzz, modes
from mlsec_platform_tests.helpers import requests_tls, upload_token

#: Per operation and mode: the whole run stays within about a minute.
EXAMPLES_PER_OPERATION = 25


def test_no_operation_answers_with_a_server_error(settings, endpoints, client_tls) -> None:
    token = upload_token(settings, endpoints, "upload:*", "publish:*", subject="fuzzer")
    tls = requests_tls(client_tls)
    with BackgroundGateway(settings, PortAllocator().take()) as gateway:
        schema = schemathesis.openapi.from_url(f"{gateway.url}/openapi.json", **tls)
        operations = [result.ok() for result in schema.get_all_operations()]
        assert {op.path for op in operations} == {
            "/v1/files/{source}",
            "/v1/events/{domain}",
            "/health",
        }
        calls: dict[str, list[int]] = {}
        for operation in operations:
            statuses = calls.setdefault(f"{operation.method.upper()} {operation.path}", [])
            for mode in modes(operation):
                strategy = operation.as_strategy(generation_mode=mode)
                fuzz(strategy, token, statuses, EXAMPLES_PER_OPERATION, tls=tls)()
    assert all(statuses for statuses in calls.values()), calls
    assert all(status < 500 for statuses in calls.values() for status in statuses), calls
