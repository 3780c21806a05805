"""The packaged policy engine, and the principals and checks its tests share."""

from __future__ import annotations

import pytest

from broker_api.policy.decision import Decision
from broker_api.policy.engine import PolicyEngine
from broker_api.policy.files import load_policy
from broker_api.principal import REVEAL, Principal
from mlsec_platform.catalog.governance import Purpose, Sensitivity

VERSION = "2026.12.1"
PUBLIC, INTERNAL, CONFIDENTIAL, RESTRICTED = Sensitivity


@pytest.fixture(scope="module")
def engine() -> PolicyEngine:
    return load_policy()


def who(
    *groups: str,
    project: str = "olist-br",
    purpose: Purpose = Purpose.ANALYTICS,
    clearance: Sensitivity = CONFIDENTIAL,
    reveal: bool = False,
) -> Principal:
    return Principal(
        subject="someone",
        groups=groups,
        project=project,
        purpose=purpose,
        clearance=clearance,
        entitlements=frozenset({REVEAL}) if reveal else frozenset(),
    )


def denied(decision: Decision, status: int, *words: str) -> None:
    assert not decision.allowed
    assert decision.status == status
    assert decision.columns == () and not decision.masks and decision.revealed == ()
    for word in words:
        assert word in decision.reason
