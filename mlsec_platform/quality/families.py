"""The rule families of a gate: each one blocking asset check of its own, so a failing rule
shows in Dagster as the family that failed, with its failing-row count and sample rows,
instead of one opaque gate.

A pandera failure case names the check that failed; :func:`family_of` sorts it:

    types       the catalog's types, columns and their order, nullability
    keys        no two rows share the dataset's key
    domains     values from a closed set or of a shape (statuses, states, token shapes)
    ranges      bounds and arithmetic between columns (non-negative, 1-5, totals)
    references  values another table must know (categories in the translation table)

Sample rows show the key and the failing columns only, personal columns masked: a gate sees
rows before they are committed, and a clear value where a token belongs is exactly what fails.
"""

from __future__ import annotations

from typing import Any

import dagster as dg
import pandas as pd
import pyarrow as pa

from mlsec_platform.catalog.governance import DatasetSpec, PiiKind
from mlsec_platform.quality.schemas import REFERENCE_CHECK, UNIQUE_KEY_CHECK

FAMILIES = {
    "types": "catalog types, columns and nullability",
    "keys": "no two rows share the key",
    "domains": "values from a closed set or of a shape (statuses, states, tokens)",
    "ranges": "bounds and arithmetic between columns",
    "references": "values another table must know",
}
#: Failing rows shown per failed family.
SAMPLE_ROWS = 5
_TYPE_CHECKS = ("not_nullable", "column_in_schema", "column_in_dataframe", "column_ordered")
_DOMAIN_CHECKS = ("isin(", "notin(", "str_matches(", "str_startswith(", "str_length(")
MASKED = "<masked>"


def family_of(check: str) -> str:
    """The family of a pandera check, by the name it reports in failure cases."""
    if check.startswith(UNIQUE_KEY_CHECK):
        return "keys"
    if check.startswith(REFERENCE_CHECK):
        return "references"
    if check in _TYPE_CHECKS or check.startswith("dtype("):
        return "types"
    if check.startswith(_DOMAIN_CHECKS):
        return "domains"
    return "ranges"


def rules_by_family(schema: Any) -> dict[str, int]:
    """How many rules of ``schema`` (a pandera DataFrameSchema) fall in each family."""
    counts = dict.fromkeys(FAMILIES, 0)
    counts["types"] = len(schema.columns) + sum(not c.nullable for c in schema.columns.values())
    checks = [*schema.checks, *(k for c in schema.columns.values() for k in c.checks)]
    for check in checks:
        counts[family_of(check.error or check.name or "")] += 1
    return counts


def check_specs(spec: DatasetSpec) -> list[dg.AssetCheckSpec]:
    """One blocking check per family, on the asset of ``spec``."""
    key = dg.AssetKey(list(spec.asset_path))
    return [
        dg.AssetCheckSpec(
            name,
            asset=key,
            blocking=True,
            description=f"{about} ({spec.id}, catalog v{spec.version}): checked on the batch "
            "before it is committed",
        )
        for name, about in FAMILIES.items()
    ]


def results(
    spec: DatasetSpec,
    table: pa.Table,
    failure_cases: pd.DataFrame | None,
    rules: dict[str, int],
    metadata: dict[str, Any] | None = None,
    failed_metadata: dict[str, Any] | None = None,
) -> list[dg.AssetCheckResult]:
    """Each family's check result for a batch: passed when none of ``failure_cases`` (pandera's,
    None: none) is of it; else its failing rows, the checks that failed and sample rows.
    ``metadata`` goes on every result, ``failed_metadata`` on the failed ones."""
    by_family: dict[str, pd.DataFrame] = {}
    if failure_cases is not None and len(failure_cases):
        labelled = failure_cases.assign(_family=failure_cases["check"].astype(str).map(family_of))
        by_family = {str(name): cases for name, cases in labelled.groupby("_family")}
    out = []
    for name in FAMILIES:
        common = {"rows": table.num_rows, "rules": rules.get(name, 0), **(metadata or {})}
        cases = by_family.get(name)
        if cases is None:
            common["failing_rows"] = 0
            out.append(dg.AssetCheckResult(check_name=name, passed=True, metadata=common))
            continue
        indices = sorted({int(i) for i in cases["index"].dropna().tolist()})
        detail = {
            "failing_rows": len(indices),
            "failed_checks": dg.MetadataValue.json(sorted(set(cases["check"].astype(str)))),
            "sample_rows": sample(spec, table, indices[:SAMPLE_ROWS], cases),
            **(failed_metadata or {}),
        }
        out.append(failed(name, table, rules, {**common, **detail}))
    return out


def failed(
    name: str, table: pa.Table, rules: dict[str, int], metadata: dict[str, Any]
) -> dg.AssetCheckResult:
    """The failed check of family ``name``."""
    return dg.AssetCheckResult(
        check_name=name,
        passed=False,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={"rows": table.num_rows, "rules": rules.get(name, 0), **metadata},
    )


def sample(
    spec: DatasetSpec, table: pa.Table, indices: list[int], cases: pd.DataFrame
) -> dg.TableMetadataValue:
    """Rows ``indices`` of ``table``: the key and the failing columns, personal data masked."""
    failing = [
        c for c in dict.fromkeys(cases["column"].dropna().astype(str)) if c in spec.column_names
    ]
    columns = [c for c in dict.fromkeys([*spec.key, *failing]) if c in table.column_names]
    personal = {c.name for c in spec.columns if c.pii is not PiiKind.NONE or c.tokenized}
    rows = table.take(indices).select(columns).to_pylist() if indices else []
    records = [
        dg.TableRecord(
            {c: MASKED if c in personal and row[c] is not None else _plain(row[c]) for c in columns}
        )
        for row in rows
    ]
    schema = dg.TableSchema(columns=[dg.TableColumn(c, "string") for c in columns])
    return dg.MetadataValue.table(records, schema=schema)


def _plain(value: Any) -> str | int | float | bool | None:
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


# -- the Spark engine's gate (``quality/engine_gate.py``): counts per rule, no pandera cases --


def engine_rule_counts(rules: list[Any], spec: DatasetSpec) -> dict[str, int]:
    """How many of the engine's ``rules`` (and its key check) fall in each family."""
    counts = dict.fromkeys(FAMILIES, 0)
    for rule in rules:
        counts[family_of(rule.check)] += 1
    counts["keys"] += 1 if spec.key else 0
    return counts


def engine_results(
    rows: int,
    summary: list[dict],
    rules: dict[str, int],
    metadata: dict[str, Any] | None = None,
    failed_metadata: dict[str, Any] | None = None,
) -> list[dg.AssetCheckResult]:
    """Each family's check result from the engine's failure counts (``summary``: column,
    check, failures): the engine counts failures per rule, so a failed family shows the
    rules that failed and their counts rather than sample rows (those are in quarantine).
    ``metadata`` goes on every result, ``failed_metadata`` on the failed ones."""
    out = []
    for name in FAMILIES:
        failed_rules = [s for s in summary if family_of(s["check"]) == name]
        common = {"rows": rows, "rules": rules.get(name, 0), **(metadata or {})}
        if not failed_rules:
            out.append(dg.AssetCheckResult(check_name=name, passed=True, metadata=common))
            continue
        out.append(
            dg.AssetCheckResult(
                check_name=name,
                passed=False,
                severity=dg.AssetCheckSeverity.ERROR,
                metadata={
                    **common,
                    "failures": sum(int(s["failures"]) for s in failed_rules),
                    "failed_checks": dg.MetadataValue.json(failed_rules),
                    **(failed_metadata or {}),
                },
            )
        )
    return out
