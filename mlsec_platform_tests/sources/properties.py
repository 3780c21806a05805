"""What the property tests of the input checks share: their settings, and the rule that a
check either passes or refuses with a typed 4xx and a reason."""

from __future__ import annotations

from hypothesis import HealthCheck, settings

from mlsec_platform.sources.validation import Rejected

PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def refused_typed_or_passed(check, *args):
    """What ``check(*args)`` returns, or None when it refused with a 4xx and a reason."""
    try:
        return check(*args)
    except Rejected as refusal:
        assert 400 <= refusal.status < 500 and refusal.reason
        return None
