"""The OpenAPI document is the contract: generated requests against the live broker, valid
(positive) and invalid (negative: data that breaks the schema) alike, never make it answer
with a server error."""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from mlsec_platform_tests.broker_api.conftest import bearer
from mlsec_platform_tests.helpers import requests_tls

#: Per operation and mode: the whole run stays within about a minute.
EXAMPLES_PER_OPERATION = 25


def test_no_operation_answers_with_a_server_error(broker, mint, client_tls) -> None:
    tls = requests_tls(client_tls)
    schema = schemathesis.openapi.from_url(f"{broker.url}/openapi.json", **tls)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.path for op in operations} >= {
        "/query",
        "/explain",
        "/feature/vector",
        "/feature/historical",
        "/catalog/datasets",
        "/catalog/schema",
        "/health",
        "/metrics",
    }
    calls: dict[str, list[int]] = {}
    for operation in operations:
        statuses = calls.setdefault(f"{operation.method.upper()} {operation.path}", [])
        # Generated from the schema, valid and invalid, then from its examples (which reach
        # real data).
        strategies = [
            *(operation.as_strategy(generation_mode=mode) for mode in modes(operation)),
            *operation.get_strategies_from_examples(),
        ]
        for strategy in strategies:
            # A fresh subject each: the rate limit is not what this test probes.
            fuzz(strategy, mint("analyst_conf"), statuses, tls=tls)()
    assert all(statuses for statuses in calls.values()), calls
    assert all(status < 500 for statuses in calls.values() for status in statuses)
    assert 200 in calls["POST /query"], calls["POST /query"]


def modes(operation) -> list[GenerationMode]:
    """Valid data for every operation; invalid data where there is an input to break (an
    operation without parameters or body has no negative case)."""
    inputs = operation.path_parameters or operation.query or operation.body
    return [GenerationMode.POSITIVE, *([GenerationMode.NEGATIVE] if inputs else [])]


def fuzz(
    strategy,
    token: str,
    statuses: list[int],
    examples: int = EXAMPLES_PER_OPERATION,
    *,
    tls: dict,
):
    """A hypothesis test sending ``strategy``'s cases with ``token`` over ``tls`` (the
    ``requests`` arguments of a client certificate), noting each status."""

    @given(case=strategy)
    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=True,  # the same cases each run: a failure reproduces, CI is not flaky
        suppress_health_check=list(HealthCheck),
    )
    def check(case) -> None:
        response = case.call(headers=bearer(token), **tls)
        statuses.append(response.status_code)
        case.validate_response(response, checks=[not_a_server_error])

    return check
