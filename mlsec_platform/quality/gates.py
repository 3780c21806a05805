"""Quality gates: a batch is validated before it is committed, or it is not committed at all.

One factory, :class:`QualityGate`, turns a catalog dataset into its Dagster asset checks (one
blocking check per rule family: types, keys, domains, ranges, references; ``families.py``) and
the code that enforces them inside the asset:

* pass: the batch is returned as the asset's output (the IO manager commits it as one Delta
  commit) and every family's check passes with the row count and its rules;
* fail: nothing is returned, so nothing is committed and the zone keeps its last good version;
  the failing rows and pandera's failure cases go to quarantine
  (``gate/table/<zone>.<name>/<run id>/``); each family that failed shows its failing-row count,
  its failed checks and sample rows (personal data masked); an audit event is written with the
  Raw batches the failing rows came from; the step fails, so downstream assets do not run.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import dagster as dg
import pandas as pd
import pandera.errors
import pyarrow as pa
import pyarrow.parquet as pq

from mlsec_platform.catalog.governance import DatasetSpec
from mlsec_platform.quality import families
from mlsec_platform.quality.engine_gate import (
    counts_sql,
    duplicate_keys_sql,
    engine_rules,
    failing_rows_sql,
    key_check_name,
)
from mlsec_platform.quality.schemas import UNIQUE_KEY_CHECK, schema_for, validation_frame
from mlsec_platform.resources.s3_lake import S3LakeResource
from mlsec_platform.settings import Zone

#: Failing rows kept per gate failure (all failure cases are kept).
MAX_QUARANTINED_ROWS = 100_000


def relevant_cases(failure_cases: pd.DataFrame, key: tuple[str, ...]) -> pd.DataFrame:
    """pandera's failure cases, less noise: a row-wise table check reports every column of a
    failing row, and for the key check only the key columns say anything."""
    check = failure_cases["check"].astype(str)
    unrelated = check.str.startswith(f"{UNIQUE_KEY_CHECK}(") & ~failure_cases["column"].isin(key)
    return failure_cases[~unrelated]


class QualityGate:
    """The gate of one catalog dataset."""

    def __init__(self, spec: DatasetSpec) -> None:
        self.spec = spec

    @property
    def check_specs(self) -> list[dg.AssetCheckSpec]:
        return families.check_specs(self.spec)

    def commit(
        self,
        context: dg.AssetExecutionContext,
        table: pa.Table,
        lake: S3LakeResource,
        *,
        metadata: dict[str, Any] | None = None,
        output: Callable[[pa.Table], Any] | None = None,
        **params: Any,
    ) -> Iterator[dg.Output | dg.AssetCheckResult]:
        """Yield the output and a passing check, or a failing check and raise ``dg.Failure``.
        ``output`` makes the IO manager's object of the validated rows (default: the rows)."""
        schema = schema_for(self.spec, **params)
        rules = families.rules_by_family(schema)
        try:
            table = self.spec.conform(table, nullability=False)
        except (pa.ArrowInvalid, pa.ArrowTypeError, ValueError) as exc:
            yield from self._fail(
                context, lake, table, None, f"does not fit the catalog types: {exc}", rules
            )
        started = time.perf_counter()
        frame = validation_frame(table)
        try:
            schema.validate(frame, lazy=True)
        except pandera.errors.SchemaErrors as exc:
            cases = relevant_cases(exc.failure_cases, self.spec.key)
            yield from self._fail(context, lake, table, cases, "failed its checks", rules)
        seconds = round(time.perf_counter() - started, 2)
        rows = table.cast(self.spec.arrow_schema())
        yield dg.Output(rows if output is None else output(rows), metadata=metadata or {})
        yield from families.results(self.spec, table, None, rules, {"seconds": seconds})

    def evaluate(
        self, table: pa.Table, metadata: dict[str, Any] | None = None, **params: Any
    ) -> list[dg.AssetCheckResult]:
        """Each family's result on ``table`` as it stands (a committed version): the same rules
        and metadata as at commit time, but nothing is quarantined, audited or raised."""
        schema = schema_for(self.spec, **params)
        rules = families.rules_by_family(schema)
        try:
            table = self.spec.conform(table, nullability=False)
        except (pa.ArrowInvalid, pa.ArrowTypeError, ValueError) as exc:
            errors = {"types": f"does not fit the catalog types: {exc}"}
            return [
                families.failed(
                    name,
                    table,
                    rules,
                    {**(metadata or {}), "error": errors.get(name, "not evaluated: types failed")},
                )
                for name in families.FAMILIES
            ]
        try:
            schema.validate(validation_frame(table), lazy=True)
        except pandera.errors.SchemaErrors as exc:
            cases = relevant_cases(exc.failure_cases, self.spec.key)
            return families.results(self.spec, table, cases, rules, metadata)
        return families.results(self.spec, table, None, rules, metadata)

    def commit_on_engine(
        self,
        context: dg.AssetExecutionContext,
        spark: Any,
        view: str,
        staged: Any,
        lake: S3LakeResource,
        *,
        metadata: dict[str, Any] | None = None,
        measures: dict[str, str] | None = None,
        **params: Any,
    ) -> Iterator[dg.Output | dg.AssetCheckResult]:
        """The same gate on the Spark engine, over the staged batch registered as ``view``
        (``quality/engine_gate.py``): yield ``staged`` as the output (the IO manager commits
        it) and passing family checks, or quarantine the failing rows and raise ``dg.Failure``.
        ``measures`` (name -> aggregate SQL over the batch) go into the output's metadata."""
        started = time.perf_counter()
        rules = engine_rules(self.spec, **params)
        counts = spark.sql(counts_sql(rules, view, measures)).collect()[0].asDict()
        metadata = {**(metadata or {})}
        metadata |= {name: counts[f"m{j}"] for j, name in enumerate(measures or {})}
        summary = [
            {"column": str(r.column), "check": r.check, "failures": str(counts[f"r{i}"])}
            for i, r in enumerate(rules)
            if counts[f"r{i}"]
        ]
        duplicates_sql = duplicate_keys_sql(self.spec, view)
        if duplicates_sql is not None:
            [(groups,)] = spark.sql(f"SELECT count(*) FROM ({duplicates_sql})").collect()
            if groups:
                check = key_check_name(self.spec)
                summary += [
                    {"column": k, "check": check, "failures": str(groups)} for k in self.spec.key
                ]
        per_family = families.engine_rule_counts(rules, self.spec)
        if summary:
            every = failing_rows_sql(self.spec, rules, view, None)
            [(failing,)] = spark.sql(f"SELECT count(*) FROM ({every})").collect()
            rows = spark.sql(
                failing_rows_sql(self.spec, rules, view, MAX_QUARANTINED_ROWS)
            ).toArrow()
            kept = self._quarantine(context, lake, rows, failing, summary, "failed its checks")
            yield from families.engine_results(
                counts["rows"], summary, per_family, {"engine": "spark"}, kept
            )
            self._raise(failing, kept, "failed its checks")
        yield dg.Output(staged, metadata=metadata)
        seconds = round(time.perf_counter() - started, 2)
        yield from families.engine_results(
            counts["rows"], [], per_family, {"seconds": seconds, "engine": "spark"}
        )

    def _fail(self, context, lake, table, failure_cases, why: str, rules: dict[str, int]):
        spec = self.spec
        indices, summary = [], []
        if failure_cases is not None:
            indices = sorted(
                {int(i) for i in failure_cases["index"].dropna().tolist() if i is not None}
            )
            summary = (
                failure_cases.groupby(["column", "check"], dropna=False)
                .size()
                .reset_index(name="failures")
                .astype(str)
                .to_dict("records")
            )
        rows = table.take(indices[:MAX_QUARANTINED_ROWS]) if indices else table.slice(0, 0)
        kept = self._quarantine(
            context, lake, rows, len(indices), summary, why, failure_cases=failure_cases
        )
        if failure_cases is None:  # the batch does not even fit the types: nothing else ran
            yield families.failed("types", table, rules, {**kept, "error": why})
        else:
            yield from families.results(spec, table, failure_cases, rules, failed_metadata=kept)
        self._raise(len(indices), kept, why)

    def _quarantine(self, context, lake, rows, failing, summary, why, *, failure_cases=None):
        """Keep ``rows`` (the failing rows, or the first of them), the reasons and the Raw
        batches they came from in quarantine; audit. Returns the metadata saying where."""
        spec = self.spec
        batches = []
        if "_raw_batch_id" in rows.column_names:
            batches = sorted(set(rows.column("_raw_batch_id").drop_null().to_pylist()))
        prefix = f"gate/table/{spec.zone.value}.{spec.name}/{context.run.run_id}"
        client, bucket = lake.client(), lake.bucket(Zone.QUARANTINE)
        sink = io.BytesIO()
        pq.write_table(rows, sink)
        client.put_object(Bucket=bucket, Key=f"{prefix}/payload", Body=sink.getvalue())
        if failure_cases is not None:
            cases = io.BytesIO()
            failure_cases.astype(str).to_parquet(cases)
            client.put_object(
                Bucket=bucket, Key=f"{prefix}/failure_cases.parquet", Body=cases.getvalue()
            )
        reason = {
            "reason": f"{spec.id} {why}",
            "dataset": spec.id,
            "catalog_version": spec.version,
            "run_id": context.run.run_id,
            "failing_rows": failing,
            "checks": summary,
            "raw_batches": batches,
        }
        client.put_object(
            Bucket=bucket,
            Key=f"{prefix}/reason.json",
            Body=json.dumps(reason, indent=2).encode(),
            ContentType="application/json",
        )
        lake.audit.emit("quality.gate_failed", {**reason, "quarantine": prefix})
        # Each failed family says where its rows are kept and the batches they came from.
        return {
            "quarantine": dg.MetadataValue.text(f"{bucket}/{prefix}"),
            "raw_batches": dg.MetadataValue.json(batches),
        }

    def _raise(self, failing: int, kept: dict[str, Any], why: str) -> None:
        raise dg.Failure(
            description=(
                f"{self.spec.id} {why}: {failing} failing rows; nothing was committed. "
                f"Failing rows and reasons are in quarantine at {kept['quarantine'].value}."
            ),
            metadata={"failing_rows": failing, "raw_batches": kept["raw_batches"]},
        )
