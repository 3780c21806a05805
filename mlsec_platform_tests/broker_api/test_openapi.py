"""The OpenAPI document is the contract: generated requests against the live broker, valid
and invalid alike, never make it answer with a server error."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from mlsec_platform_tests.broker_api.conftest import bearer


@pytest.fixture(scope="session")
def broker_schema(broker):
    return schemathesis.openapi.from_url(f"{broker.url}/openapi.json")


schema = schemathesis.pytest.from_fixture("broker_schema")


@pytest.fixture
def token(mint) -> str:
    # A fresh subject per operation: the rate limit is not what this test probes.
    return mint("analyst_conf")


@schema.parametrize()
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors(case, token) -> None:
    response = case.call(headers=bearer(token))
    case.validate_response(response, checks=[not_a_server_error])
