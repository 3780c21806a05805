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
   in the policy file, which becomes the decision's :class:`RowFilter` (403);
5. columns: each is clear up to the effective clearance (the token's clearance, capped by the
   roles), masked above it when the catalog has a mask, refused when it has none; filtering or
   ordering on a column that is not clear is refused, since a mask cannot be undone by probing
   (403);
6. reveal: tokenized columns come back clear only with the ``reveal`` entitlement, a role that
   allows revealing, a stated reason and the clearance to see the column (403/400).

Several roles: each role is one grant (datasets x purposes); the roles that grant the dataset
for the token's purpose are combined: the highest clearance cap, reveal if any of them allows
it, and the most generous value of each limit. Grants are never mixed across roles, so being in
two groups cannot combine one role's datasets with another role's purposes.

Reasons name the rule, dataset, column or purpose that decided, never data. Policy files are
YAML named after their version (``<version>.yaml``) and parsed strictly: anything unknown is an
error naming the file and the key, so the broker never starts with a policy it misreads.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from fnmatch import fnmatchcase
from pathlib import Path
from types import MappingProxyType
from typing import Any, get_type_hints

import yaml

from broker_api.limits import Limits
from broker_api.models import MAX_PAGE_ROWS
from broker_api.principal import REVEAL, Principal
from mlsec_platform.catalog.datasets import CATALOG
from mlsec_platform.catalog.governance import DatasetSpec, Mask, Purpose, Sensitivity

#: The packaged policy files.
POLICY_DIR = Path(__file__).with_name("policies")
#: The shortest reason accepted for revealing tokenized values.
MIN_REVEAL_REASON = 8

_VERSION = re.compile(r"^(\d{4})\.(\d{1,2})\.(\d{1,3})$")
_ROLE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_PROJECT_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
_PATTERN = re.compile(r"^(?P<zone>[a-z]+)/(?P<name>[a-z0-9_*?]{1,63})$")
_CLEARANCES = {s.label: s for s in Sensitivity}


@dataclass(frozen=True)
class RowFilter:
    """Only rows whose ``column`` is one of ``values`` (no values: no rows)."""

    column: str
    values: tuple[str, ...]


@dataclass(frozen=True)
class Decision:
    """The answer to one request. A denial carries its status and reason; its column, mask,
    reveal and row fields are empty and must not be used."""

    #: A new uuid4 (hex) per decision, for the audit trail.
    id: str
    allowed: bool
    #: 200 allowed, 400 malformed (bad column, ``*``, bad reveal), 403 denied, 404 unknown dataset.
    status: int
    #: Safe to show the client: names rules, datasets, columns and purposes, never data.
    reason: str
    #: The rules that decided, e.g. ``role:analyst``, ``catalog:purposes``, ``project:olist-sp``.
    policy_ids: tuple[str, ...]
    policy_version: str
    dataset: str | None
    #: The columns to return, in request order.
    columns: tuple[str, ...]
    #: The mask of each returned column that is masked (other columns are clear).
    masks: Mapping[str, Mask] = field(hash=False)
    #: Tokenized columns to return revealed (in clear), in request order.
    revealed: tuple[str, ...]
    #: The rows the principal may read; None: all rows.
    row_filter: RowFilter | None
    limits: Limits


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
    """A project's row scope: values of the row-security key it may read (None: all rows)."""

    name: str
    scope: tuple[str, ...] | None
    description: str = ""

    @property
    def policy_id(self) -> str:
        return f"project:{self.name}"


@dataclass(frozen=True)
class _View:
    """What the engine needs of one dataset, precomputed so decisions are dictionary lookups."""

    id: str
    purposes: frozenset[Purpose]
    row_key: str | None
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
            purposes=spec.purposes,
            row_key=spec.row_security_key,
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
        self._views = {dataset_id: _View.of(spec) for dataset_id, spec in catalog.items()}
        by_group: dict[str, list[Role]] = {}
        for role in self.roles:
            for group in sorted(role.groups):
                by_group.setdefault(group, []).append(role)
        self._by_group = {group: tuple(roles) for group, roles in by_group.items()}
        # Keyed by role names, so bounded by the number of role combinations in the file.
        self._limits: dict[tuple[str, ...], Limits] = {}

    @classmethod
    def load(
        cls, path: Path | None = None, *, catalog: Mapping[str, DatasetSpec] = CATALOG
    ) -> PolicyEngine:
        """The engine of the policy file ``path``, or of the highest version in the folder
        ``path`` (default: the packaged policies). Raises ValueError naming the file and key of
        anything it cannot read strictly."""
        return _parse_file(_select(POLICY_DIR if path is None else Path(path)), catalog)

    # ----------------------------------------------------------------------------------------

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
            return self._deny(principal, 404, reason, ("catalog:datasets",), None)
        # RBAC first: a caller no role grants the dataset learns nothing of its columns.
        own = self._roles_of(principal.groups)
        granting = [r for r in own if dataset_id in r.datasets]
        if not granting:
            reason = f"no role of the caller grants {dataset_id}"
            return self._deny(principal, 403, reason, ("default-deny",), dataset_id)
        probed = (*filter_columns, *order_columns)
        malformed = view.malformed(
            columns, (*columns, *probed, *reveal_columns), reveal_columns, reveal_reason
        )
        if malformed:
            return self._deny(principal, 400, malformed, ("catalog:columns",), dataset_id)

        # ABAC: the purpose, by role and by catalog.
        purpose = principal.purpose
        roles = [r for r in granting if purpose in r.purposes]
        if not roles:
            reason = (
                f"purpose {purpose.value!r} is not granted on {dataset_id} by role "
                + ", ".join(r.name for r in granting)
            )
            return self._deny(principal, 403, reason, _ids(granting), dataset_id)
        ids = _ids(roles)
        if purpose not in view.purposes:
            reason = f"the catalog does not allow purpose {purpose.value!r} on {dataset_id}"
            return self._deny(principal, 403, reason, (*ids, "catalog:purposes"), dataset_id)
        ids = (*ids, "catalog:purposes")

        row_filter = None
        if view.row_key is not None:
            project = self.projects.get(principal.project)
            if project is None:
                reason = (
                    f"project {_show(principal.project)} has no row scope in policy "
                    f"{self.version}, and {dataset_id} is row-secured"
                )
                return self._deny(principal, 403, reason, (*ids, "default-deny"), dataset_id)
            ids = (*ids, project.policy_id)
            if project.scope is not None:
                row_filter = RowFilter(view.row_key, project.scope)

        # Columns: clear, masked or refused at the effective clearance.
        clearance = min(principal.clearance, max(r.clearance_cap for r in roles))
        access = view.access[clearance]
        masks: dict[str, Mask] = {}
        for name in columns:
            mask = access[name]
            if mask is None:
                continue
            if mask is Mask.NONE:
                reason = (
                    f"column {name!r} of {dataset_id} needs clearance "
                    f"{view.sensitivity[name].label} and has no mask"
                )
                return self._deny(principal, 403, reason, (*ids, "catalog:sensitivity"), dataset_id)
            masks[name] = mask
        for name in probed:
            if access[name] is not None:
                reason = (
                    f"column {name!r} of {dataset_id} is not clear at clearance "
                    f"{clearance.label}: filtering or ordering on it is refused, "
                    "masks cannot be undone by probing"
                )
                return self._deny(principal, 403, reason, (*ids, "catalog:sensitivity"), dataset_id)
        if masks:
            ids = (*ids, "catalog:sensitivity")

        revealed: tuple[str, ...] = ()
        if reveal_columns:
            refused = self._refuse_reveal(principal, view, roles, access, reveal_columns)
            if refused:
                return self._deny(principal, 403, refused, (*ids, "reveal"), dataset_id)
            revealed = tuple(c for c in columns if c in reveal_columns)
            ids = (*ids, "reveal")

        return Decision(
            id=uuid.uuid4().hex,
            allowed=True,
            status=200,
            reason=f"allowed for purpose {purpose.value!r} by role "
            + ", ".join(r.name for r in roles),
            policy_ids=ids,
            policy_version=self.version,
            dataset=dataset_id,
            columns=tuple(columns),
            masks=MappingProxyType(masks),
            revealed=revealed,
            row_filter=row_filter,
            limits=self._combined_limits(roles),
        )

    # ----------------------------------------------------------------------------------------

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

    @staticmethod
    def _refuse_reveal(
        principal: Principal,
        view: _View,
        roles: Sequence[Role],
        access: Mapping[str, Mask | None],
        reveal_columns: Sequence[str],
    ) -> str | None:
        if REVEAL not in principal.entitlements:
            return f"revealing needs the {REVEAL!r} entitlement"
        if not any(r.reveal for r in roles):
            return f"no role of the caller may reveal on {view.id}"
        for name in reveal_columns:
            if access[name] is not None:
                return f"revealing column {name!r} needs clearance {view.sensitivity[name].label}"
        return None

    def _deny(
        self,
        principal: Principal,
        status: int,
        reason: str,
        policy_ids: tuple[str, ...],
        dataset_id: str | None,
    ) -> Decision:
        return Decision(
            id=uuid.uuid4().hex,
            allowed=False,
            status=status,
            reason=reason,
            policy_ids=policy_ids,
            policy_version=self.version,
            dataset=dataset_id,
            columns=(),
            masks=MappingProxyType({}),
            revealed=(),
            row_filter=None,
            limits=self.limits_for(principal),
        )


def _ids(roles: Iterable[Role]) -> tuple[str, ...]:
    return tuple(r.policy_id for r in roles)


def _show(name: object) -> str:
    """A client-supplied name, quoted and cut short, for a reason."""
    text = str(name)
    return repr(text if len(text) <= 64 else text[:64] + "...")


# --------------------------------------------------------------------------------------------
# Policy files


class _StrictLoader(yaml.SafeLoader):
    """Safe YAML that refuses duplicate keys (where a later key silently wins)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, yaml.MappingNode):
            self.flatten_mapping(node)
            seen: set[Any] = set()
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=deep)
                try:
                    duplicate = key in seen
                except TypeError:
                    break  # an unhashable key: the base class reports it
                if duplicate:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {key!r}", key_node.start_mark
                    )
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _version_key(version: str) -> tuple[int, ...] | None:
    match = _VERSION.match(version)
    return tuple(int(p) for p in match.groups()) if match else None


def _select(path: Path) -> Path:
    """``path`` itself, or the policy file of the highest version in the folder ``path``."""
    if not path.is_dir():
        return path
    files = sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml"))
    versions = {}
    for file in files:
        key = _version_key(file.stem)
        if key is None:
            raise ValueError(f"{file}: a policy file is named <version>.yaml, e.g. 2026.11.1.yaml")
        versions[file] = key
    if not versions:
        raise ValueError(f"{path}: no policy file (<version>.yaml)")
    return max(versions, key=versions.__getitem__)


class _Reader:
    """Checks one parsed policy file, raising ValueError naming the file and the key."""

    def __init__(self, file: Path, catalog: Mapping[str, DatasetSpec]) -> None:
        self.file = file
        self.catalog = catalog
        self.zones = sorted({s.zone.value for s in catalog.values()})
        self.domains = sorted({s.domain for s in catalog.values()})

    def error(self, key: str, message: str) -> ValueError:
        return ValueError(f"policy file {self.file}: {key or '(top level)'}: {message}")

    def mapping(
        self, value: Any, key: str, required: Iterable[str], optional: Iterable[str] = ()
    ) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.error(key, "expected a mapping")
        required, allowed = set(required), {*required, *optional}
        for name in value:
            if name not in allowed:
                raise self.error(
                    _join(key, name), f"unknown key (expected one of {sorted(allowed)})"
                )
        for name in sorted(required - value.keys()):
            raise self.error(_join(key, name), "missing")
        return value

    def text(self, value: Any, key: str) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.error(key, "expected a non-empty string")
        return value

    def optional_text(self, spec: Mapping[str, Any], name: str, key: str) -> str:
        return self.text(spec[name], _join(key, name)) if name in spec else ""

    def names(self, value: Any, key: str) -> list[str]:
        if not isinstance(value, list) or not value:
            raise self.error(key, "expected a non-empty list")
        for i, item in enumerate(value):
            self.text(item, f"{key}[{i}]")
        if len(set(value)) != len(value):
            raise self.error(key, "lists a value more than once")
        return value

    def limits(self, value: Any, key: str, base: Limits) -> Limits:
        types = get_type_hints(Limits)
        values = self.mapping(value, key, (), types)
        for name, number in values.items():
            want = types[name]
            ok = isinstance(number, int) or (want is float and isinstance(number, float))
            if isinstance(number, bool) or not ok or number <= 0:
                raise self.error(_join(key, name), f"expected a positive {want.__name__}")
        rows = values.get("max_rows_per_page", base.max_rows_per_page)
        if rows > MAX_PAGE_ROWS:
            raise self.error(_join(key, "max_rows_per_page"), f"at most {MAX_PAGE_ROWS}")
        return Limits(**{**{f.name: getattr(base, f.name) for f in fields(Limits)}, **values})

    def datasets(self, patterns: list[str], domains: list[str] | None, key: str) -> frozenset[str]:
        granted: set[str] = set()
        for i, pattern in enumerate(patterns):
            where = f"{key}.datasets[{i}]"
            match = _PATTERN.match(pattern)
            if match is None:
                raise self.error(where, f"bad pattern {pattern!r} (expected <zone>/<name glob>)")
            if match["zone"] not in self.zones:
                raise self.error(where, f"unknown zone {match['zone']!r} (known: {self.zones})")
            ids = {d for d in self.catalog if fnmatchcase(d, pattern)}
            if not ids:
                raise self.error(where, f"pattern {pattern!r} matches no catalog dataset")
            granted |= ids
        if domains is not None:
            for i, domain in enumerate(domains):
                if domain not in self.domains:
                    raise self.error(
                        f"{key}.domains[{i}]", f"unknown domain {domain!r} (known: {self.domains})"
                    )
            granted = {d for d in granted if self.catalog[d].domain in domains}
            if not granted:
                raise self.error(f"{key}.domains", "no granted dataset is in these domains")
        return frozenset(granted)

    def role(self, name: Any, value: Any, defaults: Limits) -> Role:
        key = f"roles.{name}"
        if not isinstance(name, str) or not _ROLE_NAME.match(name):
            raise self.error(key, "a role name is lower-case letters, digits and '_'")
        spec = self.mapping(
            value,
            key,
            ("groups", "datasets", "purposes"),
            ("description", "domains", "clearance_cap", "reveal", "limits"),
        )
        purposes = []
        for i, purpose in enumerate(self.names(spec["purposes"], f"{key}.purposes")):
            try:
                purposes.append(Purpose(purpose))
            except ValueError:
                known = sorted(p.value for p in Purpose)
                raise self.error(
                    f"{key}.purposes[{i}]", f"unknown purpose {purpose!r} (known: {known})"
                ) from None
        cap = spec.get("clearance_cap", Sensitivity.RESTRICTED.label)
        if cap not in _CLEARANCES:
            raise self.error(
                f"{key}.clearance_cap", f"unknown clearance {cap!r} (known: {list(_CLEARANCES)})"
            )
        reveal = spec.get("reveal", False)
        if not isinstance(reveal, bool):
            raise self.error(f"{key}.reveal", "expected true or false")
        domains = spec.get("domains")
        return Role(
            name=name,
            groups=frozenset(self.names(spec["groups"], f"{key}.groups")),
            datasets=self.datasets(
                self.names(spec["datasets"], f"{key}.datasets"),
                None if domains is None else self.names(domains, f"{key}.domains"),
                key,
            ),
            purposes=frozenset(purposes),
            clearance_cap=_CLEARANCES[cap],
            reveal=reveal,
            limits=self.limits(spec.get("limits", {}), f"{key}.limits", defaults),
            description=self.optional_text(spec, "description", key),
        )

    def project(self, name: Any, value: Any) -> Project:
        key = f"projects.{name}"
        if not isinstance(name, str) or not _PROJECT_NAME.match(name):
            raise self.error(key, "a project name is lower-case letters, digits and '-'")
        spec = self.mapping(value, key, ("scope",), ("description",))
        scope = spec["scope"]
        if scope != "*":
            if not isinstance(scope, list):
                raise self.error(f"{key}.scope", "expected '*' or a list of row-security values")
            scope = tuple(self.names(scope, f"{key}.scope"))
        return Project(
            name=name,
            scope=None if scope == "*" else scope,
            description=self.optional_text(spec, "description", key),
        )


def _join(key: str, name: Any) -> str:
    return f"{key}.{name}" if key else str(name)


def _parse_file(file: Path, catalog: Mapping[str, DatasetSpec]) -> PolicyEngine:
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as e:
        raise ValueError(f"policy file {file}: cannot be read ({e.strerror})") from None
    reader = _Reader(file, catalog)
    try:
        document = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as e:
        raise ValueError(f"policy file {file}: not valid YAML: {e}") from None
    top = reader.mapping(
        document, "", ("version", "roles", "projects"), ("description", "defaults")
    )
    version = reader.text(top["version"], "version")
    if _version_key(version) is None:
        raise reader.error("version", f"{version!r} is not <year>.<month>.<n>")
    if file.stem != version:
        raise reader.error("version", f"{version!r} differs from the file name {file.name!r}")
    reader.optional_text(top, "description", "")
    defaults = reader.mapping(top.get("defaults", {}), "defaults", (), ("limits",))
    default_limits = reader.limits(defaults.get("limits", {}), "defaults.limits", Limits())
    roles = top["roles"]
    if not isinstance(roles, dict) or not roles:
        raise reader.error("roles", "expected a non-empty mapping")
    projects = top["projects"]
    if not isinstance(projects, dict):
        raise reader.error("projects", "expected a mapping")
    return PolicyEngine(
        version,
        [reader.role(name, spec, default_limits) for name, spec in roles.items()],
        [reader.project(name, spec) for name, spec in projects.items()],
        default_limits,
        catalog=catalog,
    )
