"""The gate as engine SQL finds what pandera finds, rule by rule, on the same batches.

Sail runs in this process (no stack); each batch goes to it as a view and the generated SQL
counts the failures of every rule.
"""

from __future__ import annotations

from collections.abc import Iterator

import pandera.errors
import pyarrow as pa
import pytest

from mlsec_platform.catalog.datasets import dataset
from mlsec_platform.catalog.governance import DatasetSpec
from mlsec_platform.errors import ConfigurationError
from mlsec_platform.quality.engine_gate import (
    counts_sql,
    duplicate_keys_sql,
    engine_rules,
    failing_rows_sql,
)
from mlsec_platform.quality.gates import relevant_cases
from mlsec_platform.quality.schemas import TABLE_RULE_SQL, TABLE_RULES, schema_for, validation_frame
from mlsec_platform_tests.quality.test_schemas import _items as items


@pytest.fixture(scope="module")
def spark() -> Iterator:
    from pysail.spark import SparkConnectServer
    from pyspark.sql import SparkSession

    server = SparkConnectServer("127.0.0.1", 0)
    server.start(background=True)
    try:
        _, port = server.listening_address
        session = SparkSession.builder.remote(f"sc://127.0.0.1:{port}").getOrCreate()
        yield session
        session.stop()
    finally:
        server.stop()


def pandera_failures(spec: DatasetSpec, table: pa.Table) -> set[tuple[str, str]]:
    """(column, check) of every rule pandera fails, the key check by its key columns; a whole-
    row rule (which pandera reports for every column) with no column, as the engine does."""
    row_rules = set(TABLE_RULE_SQL)
    try:
        schema_for(spec).validate(validation_frame(table), lazy=True)
    except pandera.errors.SchemaErrors as exc:
        cases = relevant_cases(exc.failure_cases, spec.key)
        pairs = zip(cases["column"], cases["check"], strict=True)
        return {("None" if k in row_rules else str(c), str(k)) for c, k in pairs}
    return set()


def engine_failures(spark, spec: DatasetSpec, table: pa.Table) -> tuple[set, int]:
    """(column, check) of every rule the engine SQL fails, and the failing rows it selects."""
    spark.createDataFrame(table).createOrReplaceTempView("batch")
    rules = engine_rules(spec)
    counts = spark.sql(counts_sql(rules, "batch")).collect()[0].asDict()
    failed = {(str(r.column), r.check) for i, r in enumerate(rules) if counts[f"r{i}"]}
    duplicates = duplicate_keys_sql(spec, "batch")
    if duplicates and spark.sql(duplicates).count():
        failed |= {(k, f"unique_key({', '.join(spec.key)})") for k in spec.key}
    rows = spark.sql(failing_rows_sql(spec, rules, "batch", None)).count()
    return failed, rows


def delivery(late: list[int], delivered: list[int], rate: list[float]) -> pa.Table:
    n = len(late)
    return pa.table(
        {
            "year_month": [f"2024-{i + 1:02d}" for i in range(n)],
            "customer_state": ["SP"] * n,
            "delivered_orders": delivered,
            "late_orders": late,
            "late_rate": rate,
            "avg_delivery_days": [3.5] * n,
            "avg_delay_days": [-2.0] * n,
        },
        schema=dataset("gold/kpi_delivery").arrow_schema(),
    )


CASES = {
    "clean items": ("silver/order_items", items([("o1", 1), ("o1", 2)], ["1.00", "0.00"]), 0),
    "negative price": ("silver/order_items", items([("o1", 1), ("o2", 1)], ["5.00", "-1"]), 1),
    "item id below 1": ("silver/order_items", items([("o1", 0)], ["5.00"]), 1),
    "duplicate key": ("silver/order_items", items([("o1", 1), ("o1", 1), ("o2", 1)], ["1"] * 3), 2),
    "table rule and share": ("gold/kpi_delivery", delivery([1, 5], [2, 4], [0.5, 1.2]), 1),
    "clean kpi": ("gold/kpi_delivery", delivery([1], [2], [0.5]), 0),
}


@pytest.mark.parametrize("case", CASES)
def test_the_engine_gate_fails_the_rules_pandera_fails(spark, case):
    spec_id, table, failing_rows = CASES[case]
    spec = dataset(spec_id)
    expected = pandera_failures(spec, table)
    found, rows = engine_failures(spark, spec, table)
    assert found == expected
    assert rows == failing_rows


def test_every_table_rule_has_its_sql():
    assert {c.name for checks in TABLE_RULES.values() for c in checks} <= set(TABLE_RULE_SQL)


def test_a_rule_the_engine_cannot_translate_fails_when_the_asset_is_defined(monkeypatch):
    import pandera.pandas as pa_

    from mlsec_platform.quality import schemas

    monkeypatch.setitem(
        schemas.RULES, "silver/sellers", lambda p: {"seller_city": [pa_.Check.str_length(1, 5)]}
    )
    with pytest.raises(ConfigurationError, match="cannot translate"):
        engine_rules(dataset("silver/sellers"))
