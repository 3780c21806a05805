"""The policy engine: may this principal read these columns of this dataset, and how?

Every request becomes one :class:`Decision`, taken in a fixed order and denied at the first
rule that does not hold (default deny, fail closed):

1. the dataset must be in the catalog (404);
2. every column the request names (returned, filtered, ordered or revealed) must be a column
   of it, ``*`` is never accepted, and a reveal must be well formed (400);
3. RBAC: the principal's groups select roles in the policy file, and one of them must grant the
   dataset (403 ``default-deny``);
4. ABAC: the token's purpose must be granted by such a role *and* allowed by the catalog for
   the dataset; on a dataset with a row-security key the token's project must have a row scope
   in the policy file, which becomes the decision's :class:`RowFilter`; a person-level dataset
   (catalog PII kinds) without a row-security key, which no scope narrows, is read only by a
   project reading every row or one the policy grants it to, with a reason (403);
5. columns: each is clear up to the effective clearance (the token's clearance, capped by the
   roles), masked above it when the catalog has a mask (the decision's :class:`ColumnMasks`),
   refused when it has none; filtering or ordering on a column that is not clear is refused,
   since a mask cannot be undone by probing (403);
6. reveal: tokenized columns come back clear only with the ``reveal`` entitlement, a role that
   allows revealing, a stated reason and the clearance to see the column (403/400).

Several roles: each role is one grant (datasets x purposes); the roles that grant the dataset
for the token's purpose are combined: the highest clearance cap, reveal if any of them allows
it, and the most generous value of each limit. Grants are never mixed across roles, so being in
two groups cannot combine one role's datasets with another role's purposes.

Reasons name the rule, dataset, column or purpose that decided, never data. The engine only
evaluates: it is built from roles and projects that :mod:`broker_api.policy.files` read, and
answers with the types of :mod:`broker_api.policy.decision`.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from types import MappingProxyType

from broker_api.limits import Limits
from broker_api.policy.decision import NO_MASKS, ColumnMasks, Decision, RowFilter
from broker_api.policy.grants import Project, Role
from broker_api.policy.guards import NO_GUARDS, Guards
from broker_api.principal import REVEAL, Principal
from mlsec_platform.catalog.datasets import CATALOG
from mlsec_platform.catalog.governance import DatasetSpec, Mask, Purpose, Sensitivity

__all__ = ["PolicyEngine", "Project", "Role"]

#: The shortest reason accepted for revealing tokenized values.
MIN_REVEAL_REASON = 8


class _Denied(Exception):
    """A rule that does not hold: the decision's status, reason and deciding rules."""

    def __init__(self, status: int, reason: str, policy_ids: tuple[str, ...]) -> None:
        self.status, self.reason, self.policy_ids = status, reason, policy_ids


@dataclass(frozen=True)
class _View:
    """What the engine needs of one dataset, precomputed so decisions are dictionary lookups."""

    id: str
    spec: DatasetSpec
    purposes: frozenset[Purpose]
    row_key: str | None
    person_level: bool
    tokenized: frozenset[str]
    #: Per clearance, per column: None (clear), its mask, or Mask.NONE (refused).
    access: Mapping[Sensitivity, Mapping[str, Mask | None]]
    sensitivity: Mapping[str, Sensitivity]

    @classmethod
    def of(cls, spec: DatasetSpec) -> _View:
        access = {
            level: {c.name: None if c.sensitivity <= level else c.mask for c in spec.columns}
            for level in Sensitivity
        }
        return cls(
            id=spec.id,
            spec=spec,
            purposes=spec.purposes,
            row_key=spec.row_security_key,
            person_level=spec.person_level,
            tokenized=frozenset(c.name for c in spec.columns if c.tokenized),
            access=access,
            sensitivity={c.name: c.sensitivity for c in spec.columns},
        )

    def malformed(
        self,
        columns: Sequence[str],
        referenced: Iterable[str],
        reveal_columns: Sequence[str],
        reveal_reason: str | None,
    ) -> str | None:
        """Why the request's column names cannot be decided on, or None."""
        if not columns:
            return "name at least one column"
        columns_seen = self.sensitivity
        for name in referenced:
            if name == "*":
                return "'*' is not accepted: name the columns"
            if name not in columns_seen:
                return f"{self.id} has no column {_show(name)}"
        if len(set(columns)) != len(columns):
            twice = next(c for i, c in enumerate(columns) if c in columns[:i])
            return f"column {_show(twice)} is requested more than once"
        if reveal_columns:
            if len(set(reveal_columns)) != len(reveal_columns):
                return "a column is named more than once in the reveal"
            for name in reveal_columns:
                if name not in self.tokenized:
                    return f"column {_show(name)} is not tokenized: only tokens can be revealed"
                if name not in columns:
                    return f"column {_show(name)} is revealed but not requested"
            if reveal_reason is None or len(reveal_reason.strip()) < MIN_REVEAL_REASON:
                return f"a reveal needs a reason of at least {MIN_REVEAL_REASON} characters"
        return None


class PolicyEngine:
    """Decides requests against one policy version and the catalog (see the module docstring)."""

    def __init__(
        self,
        version: str,
        roles: Sequence[Role],
        projects: Iterable[Project],
        default_limits: Limits,
        *,
        catalog: Mapping[str, DatasetSpec] = CATALOG,
    ) -> None:
        self.version = version
        self.roles: tuple[Role, ...] = tuple(roles)
        self.projects: Mapping[str, Project] = MappingProxyType({p.name: p for p in projects})
        self.default_limits = default_limits
        #: The datasets this engine decides on.
        self.catalog: Mapping[str, DatasetSpec] = MappingProxyType(dict(catalog))
        #: Disclosure budgets and detection thresholds (set by the file reader).
        self.guards: Guards = NO_GUARDS
        self._views = {dataset_id: _View.of(spec) for dataset_id, spec in catalog.items()}
        by_group: dict[str, list[Role]] = {}
        for role in self.roles:
            for group in sorted(role.groups):
                by_group.setdefault(group, []).append(role)
        self._by_group = {group: tuple(roles) for group, roles in by_group.items()}
        # Keyed by role names, so bounded by the number of role combinations in the file.
        self._limits: dict[tuple[str, ...], Limits] = {}

    def limits_for(self, principal: Principal) -> Limits:
        """The most generous limits of any role of the principal (before a dataset is known,
        e.g. for rate limiting); the defaults when no role applies."""
        return self._combined_limits(self._roles_of(principal.groups))

    def decide(
        self,
        principal: Principal,
        dataset_id: str,
        columns: Sequence[str],
        *,
        filter_columns: Sequence[str] = (),
        order_columns: Sequence[str] = (),
        reveal_columns: Sequence[str] = (),
        reveal_reason: str | None = None,
    ) -> Decision:
        """Decide one request (see the module docstring for the rules and their order)."""
        view = self._views.get(dataset_id)
        if view is None:
            reason = f"unknown dataset {_show(dataset_id)}"
            return self._deny(principal, _Denied(404, reason, ("catalog:datasets",)), None, None)
        probed = (*filter_columns, *order_columns)
        try:
            # RBAC first: a caller no role grants the dataset learns nothing of its columns.
            granting = self._granting(principal, view)
            malformed = view.malformed(
                columns, (*columns, *probed, *reveal_columns), reveal_columns, reveal_reason
            )
            if malformed:
                raise _Denied(400, malformed, ("catalog:columns",))
            roles, ids = self._purpose(principal, view, granting)
            row_filter, ids = self._rows(principal, view, ids)
            clearance = min(principal.clearance, max(r.clearance_cap for r in roles))
            access = view.access[clearance]
            masks, ids = _masks(view, access, clearance, columns, probed, ids)
            revealed: tuple[str, ...] = ()
            if reveal_columns:
                _check_reveal(principal, view, roles, access, reveal_columns, ids)
                revealed = tuple(c for c in columns if c in reveal_columns)
                ids = (*ids, "reveal")
        except _Denied as denied:
            return self._deny(principal, denied, dataset_id, view.spec)
        return Decision(
            id=uuid.uuid4().hex,
            allowed=True,
            status=200,
            reason=f"allowed for purpose {principal.purpose.value!r} by role "
            + ", ".join(r.name for r in roles),
            policy_ids=ids,
            policy_version=self.version,
            dataset=dataset_id,
            columns=tuple(columns),
            masks=masks,
            revealed=revealed,
            row_filter=row_filter,
            limits=self._combined_limits(roles),
            spec=view.spec,
        )

    def decide_dataset(self, principal: Principal, dataset_id: str) -> Decision:
        """Whether the caller may see the dataset at all: the decision on its key columns
        (what the catalog endpoints list and describe)."""
        spec = self.catalog.get(dataset_id)
        return self.decide(principal, dataset_id, spec.key if spec else ("_",))

    # ----------------------------------------------------------------------------------------

    def _granting(self, principal: Principal, view: _View) -> list[Role]:
        """RBAC: the principal's roles that grant the dataset."""
        granting = [r for r in self._roles_of(principal.groups) if view.id in r.datasets]
        if not granting:
            raise _Denied(403, f"no role of the caller grants {view.id}", ("default-deny",))
        return granting

    @staticmethod
    def _purpose(
        principal: Principal, view: _View, granting: Sequence[Role]
    ) -> tuple[list[Role], tuple[str, ...]]:
        """ABAC: the granting roles that grant the token's purpose, which the catalog must
        allow on the dataset too."""
        purpose = principal.purpose
        roles = [r for r in granting if purpose in r.purposes]
        if not roles:
            reason = f"purpose {purpose.value!r} is not granted on {view.id} by role " + ", ".join(
                r.name for r in granting
            )
            raise _Denied(403, reason, _ids(granting))
        ids = _ids(roles)
        if purpose not in view.purposes:
            reason = f"the catalog does not allow purpose {purpose.value!r} on {view.id}"
            raise _Denied(403, reason, (*ids, "catalog:purposes"))
        return roles, (*ids, "catalog:purposes")

    def _rows(
        self, principal: Principal, view: _View, ids: tuple[str, ...]
    ) -> tuple[RowFilter | None, tuple[str, ...]]:
        """ABAC: the project's row scope on a row-secured dataset. A person-level dataset
        without a row-security key cannot be narrowed by any scope: only a project reading
        every row, or one the policy grants it to explicitly, reads it (else 403)."""
        if view.row_key is None and not view.person_level:
            return None, ids
        project = self.projects.get(principal.project)
        if view.row_key is None:
            return None, self._unscoped(principal, project, view, ids)
        if project is None:
            reason = (
                f"project {_show(principal.project)} has no row scope in policy "
                f"{self.version}, and {view.id} is row-secured"
            )
            raise _Denied(403, reason, (*ids, "default-deny"))
        ids = (*ids, project.policy_id)
        if project.scope is None:
            return None, ids
        return RowFilter(view.row_key, project.scope), ids

    def _unscoped(
        self, principal: Principal, project: Project | None, view: _View, ids: tuple[str, ...]
    ) -> tuple[str, ...]:
        if project is not None and project.scope is None:
            return (*ids, project.policy_id)
        if project is not None and view.id in project.unscoped:
            return (*ids, project.policy_id, f"{project.policy_id}/unscoped")
        reason = (
            f"{view.id} is person-level and has no row-security key, so the row scope of "
            f"project {_show(principal.project)} cannot narrow it, and policy {self.version} "
            f"grants the project no unscoped read of {view.id} (projects.<project>.unscoped)"
        )
        raise _Denied(403, reason, (*ids, "catalog:person-level"))

    def _roles_of(self, groups: Iterable[str]) -> list[Role]:
        """The roles the groups select, each once, in policy-file order."""
        found: dict[str, Role] = {}
        for group in groups:
            for role in self._by_group.get(group, ()):
                found[role.name] = role
        if len(found) < 2:
            return list(found.values())
        return [r for r in self.roles if r.name in found]

    def _combined_limits(self, roles: Sequence[Role]) -> Limits:
        if not roles:
            return self.default_limits
        if len(roles) == 1:
            return roles[0].limits
        names = tuple(r.name for r in roles)
        combined = self._limits.get(names)
        if combined is None:
            combined = Limits(
                **{f.name: max(getattr(r.limits, f.name) for r in roles) for f in fields(Limits)}
            )
            self._limits[names] = combined
        return combined

    def _deny(
        self,
        principal: Principal,
        denied: _Denied,
        dataset_id: str | None,
        spec: DatasetSpec | None,
    ) -> Decision:
        return Decision(
            id=uuid.uuid4().hex,
            allowed=False,
            status=denied.status,
            reason=denied.reason,
            policy_ids=denied.policy_ids,
            policy_version=self.version,
            dataset=dataset_id,
            columns=(),
            masks=NO_MASKS,
            revealed=(),
            row_filter=None,
            limits=self.limits_for(principal),
            spec=spec,
        )


def _masks(
    view: _View,
    access: Mapping[str, Mask | None],
    clearance: Sensitivity,
    columns: Sequence[str],
    probed: Sequence[str],
    ids: tuple[str, ...],
) -> tuple[ColumnMasks, tuple[str, ...]]:
    """Columns: clear, masked or refused at the effective clearance; probing what is not clear
    (filtering or ordering on it) is refused."""
    masks: dict[str, Mask] = {}
    for name in columns:
        mask = access[name]
        if mask is None:
            continue
        if mask is Mask.NONE:
            reason = (
                f"column {name!r} of {view.id} needs clearance "
                f"{view.sensitivity[name].label} and has no mask"
            )
            raise _Denied(403, reason, (*ids, "catalog:sensitivity"))
        masks[name] = mask
    for name in probed:
        if access[name] is not None:
            reason = (
                f"column {name!r} of {view.id} is not clear at clearance "
                f"{clearance.label}: filtering or ordering on it is refused, "
                "masks cannot be undone by probing"
            )
            raise _Denied(403, reason, (*ids, "catalog:sensitivity"))
    if not masks:
        return NO_MASKS, ids
    return ColumnMasks(masks), (*ids, "catalog:sensitivity")


def _check_reveal(
    principal: Principal,
    view: _View,
    roles: Sequence[Role],
    access: Mapping[str, Mask | None],
    reveal_columns: Sequence[str],
    ids: tuple[str, ...],
) -> None:
    """Reveal: the entitlement, a role that may reveal and the clearance to see each column."""
    refused = None
    if REVEAL not in principal.entitlements:
        refused = f"revealing needs the {REVEAL!r} entitlement"
    elif not any(r.reveal for r in roles):
        refused = f"no role of the caller may reveal on {view.id}"
    else:
        for name in reveal_columns:
            if access[name] is not None:
                refused = (
                    f"revealing column {name!r} needs clearance {view.sensitivity[name].label}"
                )
                break
    if refused:
        raise _Denied(403, refused, (*ids, "reveal"))


def _ids(roles: Iterable[Role]) -> tuple[str, ...]:
    return tuple(r.policy_id for r in roles)


def _show(name: object) -> str:
    """A client-supplied name, quoted and cut short, for a reason."""
    text = str(name)
    return repr(text if len(text) <= 64 else text[:64] + "...")
