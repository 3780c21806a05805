"""What a policy file sets against mass collection: disclosure budgets and the exfiltration
detectors' thresholds and actions (read by :mod:`broker_api.policy.files`, enforced by
:mod:`broker_api.budgets` and :mod:`broker_api.detection`).

In the file::

    budgets:
      support-customers:                 # the name refusals and headers give
        purpose: customer_support
        projects: [olist-br]             # optional; default: every project, each its own count
        window_seconds: 86400
        subjects: 200                    # distinct data subjects per window (optional)
        rows: 5000                       # rows per window (optional; at least one of the two)
    detection:
      entity_enumeration: {threshold: 500, window_seconds: 600, action: suspend}
      pagination_sweep: {threshold: 200, window_seconds: 600, action: throttle,
                         throttle_seconds: 300}
      filter_probing: {threshold: 100, window_seconds: 300, action: reauthenticate}
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from broker_api.principal import Principal
from mlsec_platform.catalog.governance import Purpose

_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
#: The largest count a budget without a cap on subjects or rows stands for.
UNCAPPED = 2**62


class Detector(StrEnum):
    """What each detector counts, per subject and project, within its window."""

    #: Distinct entity keys asked for through ``/feature/vector``.
    ENUMERATION = "entity_enumeration"
    #: Pages fetched by cursor (walking a dataset).
    SWEEP = "pagination_sweep"
    #: Distinct values of one filter in otherwise identical queries.
    PROBING = "filter_probing"


class Action(StrEnum):
    """What a detection does to the subject, in every replica."""

    #: Refuse the subject's requests (429) for ``throttle_seconds``.
    THROTTLE = "throttle"
    #: Refuse the subject's tokens issued before the detection (401): it must ask for a new one.
    REAUTHENTICATE = "reauthenticate"
    #: Refuse the subject (403) until an operator runs `mlsec subject resume`.
    SUSPEND = "suspend"


@dataclass(frozen=True)
class Budget:
    name: str
    purpose: Purpose
    #: None: every project (each counted on its own).
    projects: frozenset[str] | None
    window_seconds: int
    subjects: int | None
    rows: int | None

    def covers(self, principal: Principal) -> bool:
        return principal.purpose is self.purpose and (
            self.projects is None or principal.project in self.projects
        )


@dataclass(frozen=True)
class Detection:
    detector: Detector
    threshold: int
    window_seconds: int
    action: Action
    throttle_seconds: int = 300


@dataclass(frozen=True)
class Guards:
    budgets: tuple[Budget, ...] = ()
    detection: dict[Detector, Detection] = field(default_factory=dict)

    def budget_for(self, principal: Principal) -> Budget | None:
        """The budget the principal's project and purpose disclose under (at most one)."""
        for budget in self.budgets:
            if budget.covers(principal):
                return budget
        return None


NO_GUARDS = Guards()


def _positive(reader: Any, value: Any, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise reader.error(key, "expected a positive integer")
    return value


def read_guards(reader: Any, budgets: Any, detection: Any, projects: set[str]) -> Guards:
    """The ``budgets`` and ``detection`` sections of a policy file (``reader``: its strict
    reader, whose errors name the file and the key)."""
    for section, value in (("budgets", budgets), ("detection", detection)):
        if value is not None and not isinstance(value, dict):
            raise reader.error(section, "expected a mapping")
    out: list[Budget] = []
    for name, spec in (budgets or {}).items():
        key = f"budgets.{name}"
        if not isinstance(name, str) or not _NAME.match(name):
            raise reader.error(key, "a budget name is lower-case letters, digits and '-'")
        reader.mapping(
            spec,
            key,
            ("purpose", "window_seconds"),
            ("projects", "subjects", "rows", "description"),
        )
        try:
            purpose = Purpose(spec["purpose"])
        except ValueError:
            raise reader.error(f"{key}.purpose", f"unknown purpose {spec['purpose']!r}") from None
        listed = None
        if "projects" in spec:
            listed = frozenset(reader.names(spec["projects"], f"{key}.projects"))
            if unknown := sorted(listed - projects):
                raise reader.error(f"{key}.projects", f"unknown projects {unknown}")
        if "subjects" not in spec and "rows" not in spec:
            raise reader.error(key, "a budget caps subjects, rows or both")
        budget = Budget(
            name,
            purpose,
            listed,
            _positive(reader, spec["window_seconds"], f"{key}.window_seconds"),
            *(
                _positive(reader, spec[cap], f"{key}.{cap}") if cap in spec else None
                for cap in ("subjects", "rows")
            ),
        )
        for other in out:
            if other.purpose is purpose and (
                other.projects is None or listed is None or other.projects & listed
            ):
                raise reader.error(key, f"overlaps budget {other.name!r}: one budget per request")
        out.append(budget)
    found = {}
    for name, spec in (detection or {}).items():
        key = f"detection.{name}"
        try:
            detector = Detector(name)
        except ValueError:
            known = [d.value for d in Detector]
            raise reader.error(key, f"unknown detector (known: {known})") from None
        reader.mapping(spec, key, ("threshold", "window_seconds", "action"), ("throttle_seconds",))
        try:
            action = Action(spec["action"])
        except ValueError:
            known = [a.value for a in Action]
            raise reader.error(f"{key}.action", f"unknown action (known: {known})") from None
        found[detector] = Detection(
            detector,
            _positive(reader, spec["threshold"], f"{key}.threshold"),
            _positive(reader, spec["window_seconds"], f"{key}.window_seconds"),
            action,
            _positive(reader, spec.get("throttle_seconds", 300), f"{key}.throttle_seconds"),
        )
    return Guards(tuple(out), found)
