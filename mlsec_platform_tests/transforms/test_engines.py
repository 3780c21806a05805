"""DuckDB and Spark Connect (Sail) compute identical Gold and feature tables from one Silver input.

In memory, no stack: Sail runs in this process (``pysail``'s server on a loopback port) and the
tables go through the Spark Connect client. The lake-to-lake path on a stack is tested in
``defs/curated/test_spark_engine.py``.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from mlsec_platform.catalog.datasets import CATALOG
from mlsec_platform.catalog.governance import DatasetSpec
from mlsec_platform.defs.reference.assets import br_states
from mlsec_platform.defs.silver.assets import silver_table
from mlsec_platform.sample_data.olist import generate
from mlsec_platform.transforms.engine import TransformEngine
from mlsec_platform.transforms.gold import GOLD_QUERIES, Query, customer_rfm
from mlsec_platform.transforms.silver import SILVER_TRANSFORMS
from mlsec_platform_tests.helpers import local_token_vault, table_differences

OUTPUTS = [*(f"gold/{name}" for name in GOLD_QUERIES), "features/customer_rfm"]
#: The Silver inputs of Gold, inputs of a transform before the transform.
SILVER_INPUTS = (
    "product_categories",
    "customers",
    "orders",
    "order_items",
    "order_reviews",
    "products",
    "sellers",
)
MATERIALIZED_AT = datetime(2024, 1, 1, tzinfo=UTC)

# PySpark warns about pandas 3 on its Arrow path; no pandas conversion is used here.
pytestmark = pytest.mark.filterwarnings(
    "ignore:PySpark does not yet fully support pandas:FutureWarning"
)

Run = Callable[..., pa.Table]


def with_lineage(table: pa.Table) -> pa.Table:
    rows = table.num_rows
    return table.append_column("_batch_id", pa.array(["b1"] * rows, pa.string())).append_column(
        "_ingested_at", pa.array(["2024-01-01T00:00:00Z"] * rows, pa.string())
    )


@pytest.fixture(scope="module")
def silver_tables(tmp_path_factory) -> dict[str, pa.Table]:
    """Silver as the Silver assets store it: transformed, de-identified (by a token vault on a
    local folder, keys of its own), conformed."""
    tokenizer = local_token_vault(tmp_path_factory.mktemp("tokens"))
    raw = {name: with_lineage(t) for name, t in generate(seed=7, orders=3000).tables.items()}
    tables: dict[str, pa.Table] = {}
    for name in SILVER_INPUTS:
        spec, transform = CATALOG[f"silver/{name}"], SILVER_TRANSFORMS[f"silver/{name}"]
        inputs = {i: tables[i] for i in transform.inputs}
        table = silver_table(spec, transform, raw[transform.source], (), inputs, tokenizer)
        tables[name] = spec.conform(table)
    return {**tables, "br_states": br_states()}


def build_outputs(run: Run, silver_tables: dict[str, pa.Table]) -> dict[str, pa.Table]:
    """Every Gold table and the customer_rfm features; Gold inputs come from this same run."""
    tables = dict(silver_tables)
    outputs: dict[str, pa.Table] = {}

    def run_query(
        dataset_id: str, query: Query, inputs: tuple[str, ...], extra: dict | None = None
    ) -> None:
        table = run(query, **{name: tables[name] for name in inputs})
        for name, value in (extra or {}).items():
            table = table.append_column(name, pa.array([value] * table.num_rows))
        spec = CATALOG[dataset_id]
        tables[spec.name] = outputs[dataset_id] = spec.conform(table)

    for name, (query, inputs) in GOLD_QUERIES.items():
        run_query(f"gold/{name}", query, inputs)
    run_query(
        "features/customer_rfm",
        customer_rfm,
        ("fact_order_item",),
        {"feature_group_version": "customer_rfm:v1", "materialized_at": MATERIALIZED_AT},
    )
    return outputs


@pytest.fixture(scope="module")
def duckdb_outputs(silver_tables: dict[str, pa.Table]) -> dict[str, pa.Table]:
    return build_outputs(TransformEngine(engine="duckdb").run, silver_tables)


@pytest.fixture(scope="module")
def spark_engine() -> Iterator[TransformEngine]:
    """Sail in this process for the module; the engine's session is closed by its teardown."""
    from pysail.spark import SparkConnectServer

    server = SparkConnectServer("127.0.0.1", 0)
    server.start(background=True)
    try:
        _, port = server.listening_address
        engine = TransformEngine(engine="spark", spark_remote=f"sc://127.0.0.1:{port}")
        with dg.build_resources({"engine": engine}) as resources:
            yield resources.engine
            assert resources.engine._spark is not None
        assert resources.engine._spark is None, "teardown left the Spark session open"
    finally:
        server.stop()


@pytest.fixture(scope="module")
def spark_outputs(
    spark_engine: TransformEngine, silver_tables: dict[str, pa.Table]
) -> dict[str, pa.Table]:
    return build_outputs(spark_engine.run, silver_tables)


def by_key(spec: DatasetSpec, table: pa.Table) -> pa.Table:
    return table.sort_by([(k, "ascending") for k in spec.key])


@pytest.mark.parametrize("dataset_id", OUTPUTS)
def test_spark_and_duckdb_compute_identical_tables(
    dataset_id: str, duckdb_outputs: dict[str, pa.Table], spark_outputs: dict[str, pa.Table]
) -> None:
    spec = CATALOG[dataset_id]
    duck, spark = by_key(spec, duckdb_outputs[dataset_id]), by_key(spec, spark_outputs[dataset_id])
    assert duck.num_rows > 0
    assert spark.equals(duck), table_differences(spark, duck)


def test_fact_has_one_row_per_silver_order_item(
    silver_tables: dict[str, pa.Table],
    duckdb_outputs: dict[str, pa.Table],
    spark_outputs: dict[str, pa.Table],
) -> None:
    items = silver_tables["order_items"].num_rows
    assert items > 3000
    assert duckdb_outputs["gold/fact_order_item"].num_rows == items
    assert spark_outputs["gold/fact_order_item"].num_rows == items


def test_duckdb_engine_never_loads_spark() -> None:
    """A DuckDB run through the resource lifecycle imports no PySpark, so it starts no JVM."""
    script = """
import sys
import dagster as dg
import pyarrow as pa
from mlsec_platform.transforms.engine import TransformEngine
from mlsec_platform.transforms.gold import dim_seller

sellers = pa.table({"seller_id": ["s1"], "seller_zip_prefix": ["01001"],
                    "seller_city": ["sao paulo"], "seller_state": ["SP"]})
states = pa.table({"uf": ["SP"], "region": ["Sudeste"]})
with dg.build_resources({"engine": TransformEngine()}) as resources:
    out = resources.engine.run(dim_seller, sellers=sellers, br_states=states)
assert out.column("seller_region").to_pylist() == ["Sudeste"], out
print("pyspark" in sys.modules)
"""
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_the_features_compare_people_with_several_months(
    duckdb_outputs: dict[str, pa.Table],
) -> None:
    """customer_rfm's running totals are a window on DuckDB and a join of each month to the
    months before it on Spark: the comparison above covers that only if someone bought in
    several months."""
    rfm = duckdb_outputs["features/customer_rfm"]
    months = pc.value_counts(rfm["customer_token"]).field("counts")
    assert pc.max(months).as_py() > 1
