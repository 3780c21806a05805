"""The engine curated transforms run on: DuckDB (default) or PySpark (local mode here).

Both run the same SQL (``transforms/gold.py``) with their own dialect. DuckDB is in
process and fastest on one machine; Spark is for users who outgrow it (a cluster reads Delta
with delta-spark; here Arrow bridges the data both ways).
"""

from typing import TYPE_CHECKING, Literal

import dagster as dg
import pyarrow as pa
import pyarrow.dataset as ds
from pydantic import PrivateAttr

from mlsec_platform.transforms.duck import run_sql
from mlsec_platform.transforms.gold import DUCKDB, SPARK, Query

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


class TransformEngine(dg.ConfigurableResource):
    """Runs a transform query over named Arrow tables on the configured engine.

    ``engine: spark`` starts its Spark session (a JVM, seconds) on the first query and stops
    it after the run; with ``duckdb`` no Spark code is ever loaded.
    """

    engine: Literal["duckdb", "spark"] = "duckdb"
    #: Spark master URL: local mode by default, a cluster's URL for data past one machine.
    spark_master: str = "local[2]"

    _spark: "SparkSession | None" = PrivateAttr(default=None)

    def run(self, query: Query, **tables: pa.Table | ds.Dataset) -> pa.Table:
        """Datasets are scanned lazily by DuckDB (only the columns the query uses)."""
        if self.engine == "duckdb":
            return run_sql(query(DUCKDB), **tables)
        from mlsec_platform.transforms.spark import run_spark_sql

        loaded = {k: v.to_table() if isinstance(v, ds.Dataset) else v for k, v in tables.items()}
        return run_spark_sql(self.spark_session(), query(SPARK), **loaded)

    def spark_session(self) -> "SparkSession":
        """The Spark session of this engine, started on first use."""
        if self._spark is None:
            from mlsec_platform.transforms.spark import local_session

            self._spark = local_session(self.spark_master)
        return self._spark

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._spark is not None:
            self._spark.stop()
            self._spark = None
