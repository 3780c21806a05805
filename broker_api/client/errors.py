"""The SDK's errors: one type per kind of refusal, each with the broker's reason, the request
id and the decision id (the ids that find the request's audit event), so a caller can catch
what it can act on and report the rest with the ids an operator needs."""

from __future__ import annotations

import httpx

from mlsec_platform.errors import MlsecError


class BrokerError(MlsecError):
    """The broker refused or failed a request (its problem body, as far as it sent one)."""

    def __init__(
        self,
        status: int,
        reason: str,
        request_id: str | None,
        decision_id: str | None = None,
        *,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(f"{status}: {reason} (request_id={request_id}, decision_id={decision_id})")
        self.status = status
        self.reason = reason
        self.request_id = request_id
        self.decision_id = decision_id
        #: Seconds the broker asked the caller to wait before trying again, if it said.
        self.retry_after = retry_after

    @classmethod
    def from_response(
        cls, response: httpx.Response, retry_after: float | None = None
    ) -> BrokerError:
        """The typed error of a refusal, from its JSON problem body; anything else (e.g. a
        proxy's page) keeps its status and a short text."""
        try:
            body = response.json()
        except ValueError:
            body = None
        kind = error_type(response.status_code)
        if not isinstance(body, dict):
            text = response.text.strip()[:200] or response.reason_phrase
            return kind(
                response.status_code,
                text,
                response.headers.get("x-request-id"),
                retry_after=retry_after,
            )
        return kind(
            int(body.get("status", response.status_code)),
            str(body.get("reason", response.reason_phrase)),
            body.get("request_id") or response.headers.get("x-request-id"),
            body.get("decision_id"),
            retry_after=retry_after,
        )


class InvalidRequest(BrokerError):
    """The request is malformed or asks for more than the policy allows at once (400, 413,
    422): change the request."""


class NotAuthenticated(BrokerError):
    """No valid token (401): get a new one."""


class AccessDenied(BrokerError):
    """The policy denies the request (403): the reason names the rule."""


class NotFound(BrokerError):
    """No such dataset, feature group, version or route (404, 410)."""


class RateLimited(BrokerError):
    """A rate, concurrency or daily-quota limit (429); ``retry_after`` says when to retry."""


class BrokerUnavailable(BrokerError):
    """The broker, or a server it needs, did not answer (5xx, or no connection): try later."""


_BY_STATUS: dict[int, type[BrokerError]] = {
    400: InvalidRequest,
    413: InvalidRequest,
    422: InvalidRequest,
    401: NotAuthenticated,
    403: AccessDenied,
    404: NotFound,
    410: NotFound,
    429: RateLimited,
}


def error_type(status: int) -> type[BrokerError]:
    """The error type of an HTTP status the broker refused with."""
    if status >= 500:
        return BrokerUnavailable
    return _BY_STATUS.get(status, BrokerError)
