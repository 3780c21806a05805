"""The platform's one error base.

Every error the platform raises on purpose is an :class:`MlsecError`: its message says what
went wrong and what to do, and never holds a secret. A service answers one with its
``http_status`` through one exception handler; the ``mlsec`` command prints the message
without a traceback. Typed subclasses live beside the code that raises them (``VaultError``
in the Vault resource, ``QueryError`` in the broker's compiler, ...); the generic kinds below
are for errors that have no closer home.
"""

from __future__ import annotations


class MlsecError(Exception):
    """Base of the platform's errors."""

    #: The status a service answers with when a request ends in this error.
    http_status: int = 500


class ConfigurationError(MlsecError):
    """The platform is not configured well enough to go on; the message says what to set."""

    http_status = 503


class InvalidInput(MlsecError, ValueError):
    """What a caller sent cannot be used; the message says which part and why."""

    http_status = 400


class NotFound(MlsecError, LookupError):
    """The named thing does not exist (or the caller may not know that it does)."""

    http_status = 404


class AccessDenied(MlsecError, PermissionError):
    """The caller is known but not allowed this action."""

    http_status = 403


class Unavailable(MlsecError):
    """A server the request needs does not answer; nothing was done, retry later."""

    http_status = 503
