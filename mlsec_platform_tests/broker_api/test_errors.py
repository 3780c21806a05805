"""Every broker error is an MlsecError with the status it is answered with, and keeps the
standard-library parent code relies on."""

from __future__ import annotations

import pytest

from broker_api.audit import AuditUnavailable
from broker_api.compiler import QueryError
from broker_api.cursor import InvalidCursor
from broker_api.errors import LimitReached, PolicyDenied, RequestRefused, Unauthenticated
from broker_api.lineage import LineageUnavailable
from broker_api.masking import UnsupportedMask
from broker_api.snapshots import QueryTimeout, SnapshotUnavailable
from mlsec_platform.errors import MlsecError


@pytest.mark.parametrize(
    ("error", "status", "parent"),
    [
        (QueryError, 400, ValueError),
        (InvalidCursor, 400, ValueError),
        (LineageUnavailable, 404, LookupError),
        (SnapshotUnavailable, 410, LookupError),
        (QueryTimeout, 504, TimeoutError),
        (AuditUnavailable, 503, RuntimeError),
        (UnsupportedMask, 500, TypeError),
    ],
)
def test_typed_errors_carry_their_status_and_parent(error, status, parent) -> None:
    raised = error("what went wrong")
    assert isinstance(raised, MlsecError) and isinstance(raised, parent)
    assert raised.http_status == status and str(raised) == "what went wrong"


def test_refusals_carry_status_reason_and_headers() -> None:
    assert issubclass(QueryError, RequestRefused) and not issubclass(
        UnsupportedMask, RequestRefused
    )
    plain = RequestRefused("limit 5000 is above this policy's 1000 rows per page")
    assert (plain.http_status, plain.reason, dict(plain.headers)) == (400, str(plain), {})
    assert RequestRefused("too large", status=413).http_status == 413
    assert dict(Unauthenticated("missing bearer token").headers) == {"WWW-Authenticate": "Bearer"}
    assert PolicyDenied("unknown dataset 'x'", status=404).http_status == 404
    limited = LimitReached("rate limit reached", retry_after=3)
    assert limited.http_status == 429 and dict(limited.headers) == {"Retry-After": "3"}
    # Headers are per refusal: one refusal's never leak into another's.
    assert dict(RequestRefused("x").headers) == {} and dict(Unauthenticated("y").headers) == {
        "WWW-Authenticate": "Bearer"
    }
