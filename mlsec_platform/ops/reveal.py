"""An operator turns tokens back into clear values: audited as the operator, at high severity.

The reveal runs under a short-lived child token that holds only the ``reveal`` policy, so the
bootstrap credentials never decrypt anything themselves.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import hvac

from mlsec_platform.ops.operator import child_token, operator_audit, operator_name, operator_vault
from mlsec_platform.privacy.reveal import REVEAL_POLICY, reveal
from mlsec_platform.settings import PlatformSettings


def reveal_as_operator(
    settings: PlatformSettings,
    tokens: Sequence[str],
    domain: str,
    reason: str,
    echo: Callable[[str], None] = print,
) -> list[str]:
    """The clear values of ``tokens``, one line each (``RevealDenied``, audited, if refused)."""
    operator = operator_vault(settings)
    revealer = hvac.Client(url=operator.url, token=child_token(operator, REVEAL_POLICY))
    with operator_audit(settings, operator) as audit:
        values = reveal(
            revealer,
            tokens,
            domain=domain,
            subject=operator_name(),
            reason=reason,
            emit=audit.emit,
        )
    for value in values:
        echo(value)
    return values
