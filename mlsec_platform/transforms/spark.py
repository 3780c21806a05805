"""PySpark over Arrow: the engine of the heavy Silver -> Gold transforms past one machine.

The same SQL as on DuckDB (``transforms/gold.py``, :data:`~mlsec_platform.transforms.gold.SPARK`
dialect). Arrow bridges the data both ways (``createDataFrame(pa.Table)``, ``toArrow()``):
a cluster would read Delta with delta-spark, whose jars this machine cannot download.
"""

from __future__ import annotations

import os

import pyarrow as pa
from dagster_pyspark import LazyPySparkResource
from pyspark.sql import SparkSession

#: UTC like DuckDB, loopback only, Arrow transfers, no UI (the master comes separately).
LOCAL_SPARK_CONFIG: dict[str, str] = {
    "spark.app.name": "mlsec",
    "spark.sql.session.timeZone": "UTC",
    "spark.driver.bindAddress": "127.0.0.1",
    "spark.driver.host": "127.0.0.1",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    # Small inputs: the default 200 shuffle partitions would mostly schedule empty tasks.
    "spark.sql.shuffle.partitions": "4",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
}
#: Arrow view types Spark cannot read, and the plain types they become (same values).
_PLAIN_TYPES = {pa.string_view(): pa.string(), pa.binary_view(): pa.binary()}


def local_session(master: str = "local[2]") -> SparkSession:
    """A Spark session on ``master`` (local mode, two cores by default), quiet (ERROR logs).

    Created through dagster-pyspark's lazy resource; starts the JVM (seconds), so call it only
    when the Spark engine is actually used.
    """
    if master.startswith("local"):
        # Read when the JVM starts: without it Spark looks up (and warns about) a public address.
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    config = {**LOCAL_SPARK_CONFIG, "spark.master": master}
    session = LazyPySparkResource(spark_config=config).spark_session
    session.sparkContext.setLogLevel("ERROR")
    return session


def run_spark_sql(spark: SparkSession, sql: str, **tables: pa.Table) -> pa.Table:
    """Run ``sql`` (Spark dialect) with ``tables`` registered as temporary views by name.

    The views live in a fresh child session (shared JVM and cache, own temporary views), so
    concurrent runs on one Spark session never see each other's inputs.
    """
    session = spark.newSession()
    try:
        for name, table in tables.items():
            session.createDataFrame(_plain(table)).createOrReplaceTempView(name)
        return session.sql(sql).toArrow()
    finally:
        for name in tables:
            session.catalog.dropTempView(name)


def _plain(table: pa.Table) -> pa.Table:
    """``table`` with view-typed columns (some Arrow readers produce them) made plain."""
    schema = pa.schema(
        [f.with_type(_PLAIN_TYPES.get(f.type, f.type)) for f in table.schema],
        metadata=table.schema.metadata,
    )
    return table if schema.equals(table.schema) else table.cast(schema)
