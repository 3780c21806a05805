"""Policy files: the one strict reader of the broker's access policy.

A policy file is YAML named after its version (``<version>.yaml``), e.g.
``policies/2026.11.1.yaml`` beside this module. It is parsed strictly: anything unknown, a
duplicate key, a dataset pattern that matches no catalog dataset, is a
:class:`PolicyFileError` naming the file and the key, so the broker never starts with a policy
it misreads. The reader builds a :class:`~broker_api.policy.engine.PolicyEngine`; the engine
itself never parses.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import fields
from fnmatch import fnmatchcase
from pathlib import Path
from types import MappingProxyType
from typing import Any, get_type_hints

import yaml

from broker_api.limits import Limits
from broker_api.models import MAX_PAGE_ROWS
from broker_api.policy.engine import PolicyEngine, Project, Role
from broker_api.policy.guards import read_guards
from mlsec_platform.catalog.datasets import CATALOG
from mlsec_platform.catalog.governance import DatasetSpec, Purpose, Sensitivity
from mlsec_platform.errors import ConfigurationError

#: The packaged policy files.
POLICY_DIR = Path(__file__).with_name("policies")

_VERSION = re.compile(r"^(\d{4})\.(\d{1,2})\.(\d{1,3})$")
_ROLE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_PROJECT_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
_PATTERN = re.compile(r"^(?P<zone>[a-z]+)/(?P<name>[a-z0-9_*?]{1,63})$")
_CLEARANCES = {s.label: s for s in Sensitivity}
#: The shortest reason accepted for an unscoped grant.
MIN_GRANT_REASON = 8


class PolicyFileError(ConfigurationError, ValueError):
    """A policy file that cannot be read strictly: the message names the file and the key."""


def load_policy(
    path: Path | None = None, *, catalog: Mapping[str, DatasetSpec] = CATALOG
) -> PolicyEngine:
    """The engine of the policy file ``path``, or of the highest version in the folder
    ``path`` (default: the packaged policies). Raises PolicyFileError naming the file and key
    of anything it cannot read strictly."""
    return _parse_file(_select(POLICY_DIR if path is None else Path(path)), catalog)


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
    try:
        files = sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml"))
    except PermissionError:
        raise PolicyFileError(
            f"{path}: the policy folder cannot be read by this process (run as root, the "
            "broker runs as the OS user mlsec-broker): make it readable, e.g. chmod o+rx"
        ) from None
    versions = {}
    for file in files:
        key = _version_key(file.stem)
        if key is None:
            raise PolicyFileError(
                f"{file}: a policy file is named <version>.yaml, e.g. 2026.11.1.yaml"
            )
        versions[file] = key
    if not versions:
        raise PolicyFileError(f"{path}: no policy file (<version>.yaml)")
    return max(versions, key=versions.__getitem__)


class _Reader:
    """Checks one parsed policy file, raising PolicyFileError naming the file and the key."""

    def __init__(self, file: Path, catalog: Mapping[str, DatasetSpec]) -> None:
        self.file = file
        self.catalog = catalog
        self.zones = sorted({s.zone.value for s in catalog.values()})
        self.domains = sorted({s.domain for s in catalog.values()})

    def error(self, key: str, message: str) -> PolicyFileError:
        return PolicyFileError(f"policy file {self.file}: {key or '(top level)'}: {message}")

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
        spec = self.mapping(value, key, ("scope",), ("description", "unscoped"))
        scope = spec["scope"]
        if scope != "*":
            if not isinstance(scope, list):
                raise self.error(f"{key}.scope", "expected '*' or a list of row-security values")
            scope = tuple(self.names(scope, f"{key}.scope"))
            for i, value in enumerate(scope):
                # The warehouse reads a scope as values joined by ',' with its MAC after ';'
                # (storage/row_scope.py): a value holding either would mean something else.
                if "," in value or ";" in value or value != value.strip():
                    raise self.error(
                        f"{key}.scope[{i}]", "a row-security value has no ',', ';' or spaces"
                    )
        return Project(
            name=name,
            scope=None if scope == "*" else scope,
            description=self.optional_text(spec, "description", key),
            unscoped=MappingProxyType(self.unscoped(spec.get("unscoped", {}), f"{key}.unscoped")),
        )

    def unscoped(self, value: Any, key: str) -> dict[str, str]:
        """Explicit grants of person-level datasets without a row-security key (which the
        project's scope cannot narrow): dataset id -> the reason, which is mandatory."""
        if not isinstance(value, dict):
            raise self.error(key, "expected a mapping of dataset id -> reason")
        for dataset, reason in value.items():
            where = _join(key, dataset)
            spec = self.catalog.get(dataset) if isinstance(dataset, str) else None
            if spec is None:
                raise self.error(where, f"{dataset!r} is no catalog dataset")
            if spec.row_security_key is not None:
                raise self.error(
                    where, f"has a row-security key ({spec.row_security_key}): the scope applies"
                )
            if not spec.person_level:
                raise self.error(where, "is not person-level: every project reads it")
            if not isinstance(reason, str) or len(reason.strip()) < MIN_GRANT_REASON:
                raise self.error(
                    where, f"a grant needs a reason of at least {MIN_GRANT_REASON} characters"
                )
        return dict(value)


def _join(key: str, name: Any) -> str:
    return f"{key}.{name}" if key else str(name)


def _parse_file(file: Path, catalog: Mapping[str, DatasetSpec]) -> PolicyEngine:
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as e:
        raise PolicyFileError(f"policy file {file}: cannot be read ({e.strerror})") from None
    reader = _Reader(file, catalog)
    try:
        document = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as e:
        raise PolicyFileError(f"policy file {file}: not valid YAML: {e}") from None
    top = reader.mapping(
        document,
        "",
        ("version", "roles", "projects"),
        ("description", "defaults", "budgets", "detection"),
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
    engine = PolicyEngine(
        version,
        [reader.role(name, spec, default_limits) for name, spec in roles.items()],
        [reader.project(name, spec) for name, spec in projects.items()],
        default_limits,
        catalog=catalog,
    )
    engine.guards = read_guards(reader, top.get("budgets"), top.get("detection"), set(projects))
    return engine
