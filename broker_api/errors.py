"""Refusals: how the broker answers a request it does not serve with data.

Every refusal is a :class:`RequestRefused` (an :class:`~mlsec_platform.errors.MlsecError`): its
``http_status``, a reason safe to show the caller (it names rules, datasets, columns, never
data) and the headers its answer needs. The app's one exception handler turns any of them into
the problem body ``{status, reason, request_id, decision_id}``; nothing on the request path
catches one to rewrap it. Typed refusals live beside the code that raises them (``QueryError``
in the compiler, ``InvalidCursor``, ``SnapshotUnavailable``, ``QueryTimeout``,
``LineageUnavailable``, the online store's and reveal's in the services); the kinds here are
raised by the request path itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from mlsec_platform.errors import MlsecError


class RequestRefused(MlsecError):
    """A request answered without data: ``http_status``, a reason safe to show, and the
    headers of the answer (``Retry-After``, ``WWW-Authenticate``)."""

    http_status = 400
    headers: Mapping[str, str] = MappingProxyType({})

    def __init__(
        self, reason: str, *, status: int | None = None, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        if status is not None:
            self.http_status = status
        if headers:
            self.headers = dict(headers)


class Unauthenticated(RequestRefused):
    """No valid bearer token (missing, malformed, expired, wrongly signed): the answer asks
    for one."""

    http_status = 401
    headers = MappingProxyType({"WWW-Authenticate": "Bearer"})


class PolicyDenied(RequestRefused):
    """The policy decision refused the request; its status is the decision's (400 malformed,
    403 denied, 404 unknown dataset)."""

    http_status = 403


class LimitReached(RequestRefused):
    """A rate, concurrency or daily-quota limit of the caller's policy: retry later."""

    http_status = 429

    def __init__(self, reason: str, *, retry_after: int | float | str) -> None:
        super().__init__(reason, headers={"Retry-After": str(retry_after)})
