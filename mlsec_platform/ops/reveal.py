"""An operator turns tokens back into clear values: audited as the operator, at high severity.

The reveal runs under the operator's `reveal` command token: transit decrypt of the
tokenization key (and its audit login), nothing else.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from mlsec_platform.ops.operator import operator_command
from mlsec_platform.privacy.reveal import reveal
from mlsec_platform.settings import PlatformSettings


def reveal_as_operator(
    settings: PlatformSettings,
    tokens: Sequence[str],
    domain: str,
    reason: str,
    echo: Callable[[str], None] = print,
) -> list[str]:
    """The clear values of ``tokens``, one line each (``RevealDenied``, audited, if refused)."""
    with operator_command(settings, "reveal") as session:
        values = reveal(
            session.vault,
            tokens,
            domain=domain,
            subject=session.actor,
            reason=reason,
            emit=session.audit.emit,
        )
    for value in values:
        echo(value)
    return values
