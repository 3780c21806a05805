"""How an operator action refuses: three kinds, which a person reads differently.

Called from Python they are typed errors like any other. The ``mlsec`` command shows each the
way click shows its own errors: an unknown name as an invalid value and a request the command
cannot serve with the command's usage (both exit 2), an action that failed as one line
(exit 1). Every other platform error ends as ``error: <message>`` (exit 2).
"""

from __future__ import annotations

from mlsec_platform.errors import InvalidInput, MlsecError, NotFound


class UnknownName(NotFound):
    """An argument names nothing the platform knows; the message lists what it knows."""


class NotApplicable(InvalidInput):
    """The command cannot do this here (profile, options, kind of input); the message says why."""


class ActionFailed(MlsecError):
    """The action ran and did not complete; the message says what stays and what to do next."""
