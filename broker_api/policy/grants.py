"""The grants a policy file declares, resolved against the catalog: roles and projects.

Read by :mod:`broker_api.policy.files`, evaluated by :mod:`broker_api.policy.engine`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from broker_api.limits import Limits
from mlsec_platform.catalog.governance import Purpose, Sensitivity


@dataclass(frozen=True)
class Role:
    """One grant of the policy file, with its dataset patterns resolved against the catalog."""

    name: str
    groups: frozenset[str]
    datasets: frozenset[str]
    purposes: frozenset[Purpose]
    clearance_cap: Sensitivity
    reveal: bool
    limits: Limits
    description: str = ""

    @property
    def policy_id(self) -> str:
        return f"role:{self.name}"


@dataclass(frozen=True)
class Project:
    """A project's row scope: values of the row-security key it may read (None: all rows),
    and the person-level datasets without a row-security key it may read in full anyway
    (dataset id -> the reason the policy gives; the scope cannot narrow those)."""

    name: str
    scope: tuple[str, ...] | None
    description: str = ""
    unscoped: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def policy_id(self) -> str:
        return f"project:{self.name}"
