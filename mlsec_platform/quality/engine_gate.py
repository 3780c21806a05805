"""The quality gate as engine SQL, generated from the same pandera schema as on DuckDB.

On the Spark engine the batch never comes to this process, so pandera cannot validate it here.
Instead each rule of :func:`~mlsec_platform.quality.schemas.schema_for` (the catalog's
nullability, key, token shapes and the value rules of ``RULES`` / ``TABLE_RULES``) becomes a
SQL predicate that is true on a failing row, and one aggregate query on the engine counts the
failures of every rule at once (one scan; the key check is one more grouped scan). Only when
something fails are the failing rows (at most ``MAX_QUARANTINED_ROWS``) fetched, for quarantine.

A check this module cannot translate raises when the asset is defined: a rule never silently
drops out of the Spark gate. As in pandera, a null value passes a value check (only the
nullability rule sees it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mlsec_platform.catalog.governance import DatasetSpec
from mlsec_platform.errors import ConfigurationError
from mlsec_platform.quality.schemas import TABLE_RULE_SQL, UNIQUE_KEY_CHECK, schema_for


@dataclass(frozen=True)
class EngineRule:
    """One rule: the column it checks (None: the row), its name as pandera reports it, and a
    predicate true on the rows that fail it."""

    column: str | None
    check: str
    failing: str


def quoted(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def literal(value: Any) -> str:
    """A SQL literal of a rule's value (strings escaped for Spark SQL)."""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | float):
        return repr(value)
    text = str(value).replace("\\", "\\\\").replace("'", "\\'")
    return f"'{text}'"


def _holds(check, column: str) -> str:
    """The predicate of one pandera column check over ``column`` (true where it holds)."""
    stats = check.statistics
    if check.name == "greater_than_or_equal_to":
        return f"{column} >= {literal(stats['min_value'])}"
    if check.name == "in_range":
        low = ">=" if stats.get("include_min", True) else ">"
        high = "<=" if stats.get("include_max", True) else "<"
        return (
            f"{column} {low} {literal(stats['min_value'])} "
            f"AND {column} {high} {literal(stats['max_value'])}"
        )
    if check.name == "isin":
        values = ", ".join(literal(v) for v in stats["allowed_values"])
        return f"{column} IN ({values})" if values else "FALSE"
    if check.name == "str_matches":
        pattern = stats["pattern"]
        # pandera matches from the start of the value (re.match); RLIKE searches anywhere.
        anchored = pattern if pattern.startswith("^") else f"^(?:{pattern})"
        return f"{column} RLIKE {literal(anchored)}"
    raise ConfigurationError(f"the engine gate cannot translate the check {check.error!r}")


def engine_rules(spec: DatasetSpec, **params: Any) -> list[EngineRule]:
    """Every rule of ``spec``'s pandera schema as SQL, except key uniqueness (see
    :func:`duplicate_keys_sql`)."""
    schema = schema_for(spec, **params)
    rules = []
    for c in spec.columns:
        q = quoted(c.name)
        if not c.nullable:
            rules.append(EngineRule(c.name, "not_nullable", f"{q} IS NULL"))
        for check in schema.columns[c.name].checks:
            holds = _holds(check, q)
            rules.append(
                EngineRule(c.name, str(check.error), f"({q} IS NOT NULL AND NOT ({holds}))")
            )
    for check in schema.checks:
        if check.name.startswith(f"{UNIQUE_KEY_CHECK}("):
            continue
        if check.name not in TABLE_RULE_SQL:
            raise ConfigurationError(f"{spec.id}: no SQL for the table rule {check.name!r}")
        rules.append(
            EngineRule(None, check.name, f"coalesce(NOT ({TABLE_RULE_SQL[check.name]}), FALSE)")
        )
    return rules


def counts_sql(rules: list[EngineRule], view: str, measures: dict[str, str] | None = None) -> str:
    """One row: ``rows``, ``r<i>`` (the failing rows of rule ``i``) and ``m<j>``, the value of
    the ``j``-th of ``measures`` (aggregate SQL the asset reports, in the same scan)."""
    columns = ["count(*) AS rows"] + [f"count_if({r.failing}) AS r{i}" for i, r in enumerate(rules)]
    columns += [f"{sql} AS m{j}" for j, sql in enumerate((measures or {}).values())]
    return f"SELECT {', '.join(columns)} FROM {view}"


def duplicate_keys_sql(spec: DatasetSpec, view: str) -> str | None:
    """The key values held by more than one row (None: the dataset has no key)."""
    if not spec.key:
        return None
    key = ", ".join(quoted(k) for k in spec.key)
    return f"SELECT {key} FROM {view} GROUP BY {key} HAVING count(*) > 1"


def failing_rows_sql(
    spec: DatasetSpec, rules: list[EngineRule], view: str, limit: int | None
) -> str:
    """The rows that fail any rule or share their key with another row (at most ``limit``)."""
    conditions = [r.failing for r in rules] or ["FALSE"]
    where = " OR ".join(f"({c})" for c in conditions)
    duplicates = duplicate_keys_sql(spec, view)
    if duplicates is not None:
        key = ", ".join(quoted(k) for k in spec.key)
        where += f" OR ({key}) IN (SELECT {key} FROM ({duplicates}))"
    return f"SELECT * FROM {view} WHERE {where}" + ("" if limit is None else f" LIMIT {int(limit)}")


def key_check_name(spec: DatasetSpec) -> str:
    return f"{UNIQUE_KEY_CHECK}({', '.join(spec.key)})"
