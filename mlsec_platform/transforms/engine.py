"""The engine curated transforms run on: DuckDB (default, in process) or Spark Connect.

Both run the same SQL (``transforms/gold.py``, ``transforms/silver.py``) in their own dialect.
DuckDB runs in the Dagster process over Arrow, fastest on one machine. ``spark`` is any Spark
Connect endpoint: Sail, which `mlsec up` starts with the pipeline's S3 keys (``stack/servers/
sail.py``), or ``MLSEC_SPARK_REMOTE`` (Spark 4 with Delta, a managed Spark, a Sail cluster).
On it the assets read and write the lake's Delta tables on the engine itself
(``storage/engine_tables.py``); this process only plans, checks counts and commits.
"""

from typing import TYPE_CHECKING, Literal

import dagster as dg
import pyarrow as pa
import pyarrow.dataset as ds
from pydantic import Field, PrivateAttr

from mlsec_platform.errors import ConfigurationError
from mlsec_platform.settings import get_settings
from mlsec_platform.transforms.duck import run_sql
from mlsec_platform.transforms.gold import DUCKDB, SPARK, Dialect, Query

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


class TransformEngine(dg.ConfigurableResource):
    """The engine of the curated assets, and its Spark Connect session when it is ``spark``.

    The session is dagster-pyspark's (``LazyPySparkResource`` with ``spark.remote``), opened on
    first use and stopped after the run; with ``duckdb`` no Spark code is ever loaded.
    """

    engine: Literal["duckdb", "spark"] = "duckdb"
    spark_remote: str | None = Field(
        default=None,
        description="Spark Connect endpoint; unset: MLSEC_SPARK_REMOTE, else the running "
        "stack's Sail (read at first use)",
    )

    _spark: "SparkSession | None" = PrivateAttr(default=None)

    @property
    def on_spark(self) -> bool:
        return self.engine == "spark"

    @property
    def dialect(self) -> Dialect:
        return SPARK if self.on_spark else DUCKDB

    @property
    def kinds(self) -> set[str]:
        """The asset kinds of a table this engine made: the engine that actually ran."""
        return {"delta", "s3", self.engine}

    def run(self, query: Query, **tables: pa.Table | ds.Dataset) -> pa.Table:
        """``query`` over in-memory tables, result in memory (DuckDB scans datasets lazily).

        On Spark the tables go through the client (``createDataFrame``) and back: for small
        inputs and tests only; the assets keep their tables on the engine instead.
        """
        if not self.on_spark:
            return run_sql(query(DUCKDB), **tables)
        from mlsec_platform.transforms.spark import run_spark_sql

        loaded = {k: v.to_table() if isinstance(v, ds.Dataset) else v for k, v in tables.items()}
        return run_spark_sql(self.spark_session(), query(SPARK), **loaded)

    def remote(self) -> str:
        """The Spark Connect address this engine uses."""
        settings = get_settings()
        remote = self.spark_remote or settings.spark_remote
        if remote is None:
            try:
                remote = settings.endpoints().spark_remote
            except ConfigurationError:
                remote = None
        if remote is None:
            raise ConfigurationError(
                "the spark engine has no Spark Connect endpoint: set MLSEC_SPARK_REMOTE, or run "
                "`mlsec up` with MLSEC_ENGINE=spark to start the embedded Sail"
            )
        return remote

    def spark_session(self) -> "SparkSession":
        """The Spark Connect session of this engine, opened on first use."""
        if self._spark is None:
            from mlsec_platform.transforms.spark import connect_session

            self._spark = connect_session(self.remote())
        return self._spark

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._spark is not None:
            self._spark.stop()
            self._spark = None
