"""The gateway's own refusals; each carries the status it is answered with.

The checks of a file or an event raise ``sources.validation.Rejected`` and a bad token
``identities.tokens.InvalidToken``; the gateway's one exception handler answers all of them
(every :class:`~mlsec_platform.errors.MlsecError`) alike: the input kept, the refusal audited.
"""

from __future__ import annotations

from mlsec_platform.errors import AccessDenied, InvalidInput, NotFound


class ScopeNotGranted(AccessDenied):
    """A valid token that does not grant sending this source or domain."""


class TooLarge(InvalidInput):
    """A body over the gateway's size limit for its kind; only its first bytes are kept."""

    http_status = 413


class UnknownContract(NotFound):
    """No contract for the named source or event domain."""


class BodyTimeout(InvalidInput):
    """A body that stalled or took too long to arrive; its upload slot is freed."""

    http_status = 408


class BodyIncomplete(InvalidInput):
    """A body that cannot be read as declared: its client went away, or its Content-Length
    is not a number."""
