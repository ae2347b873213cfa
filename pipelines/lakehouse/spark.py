"""The Spark session the lakehouse runs on: local mode here (`local[2]`), a cluster's master in production.

One session per process (Spark allows one active context): `session()` starts it on first use and returns the
same one after. The JVM takes about four seconds to start, so tests share one across a test session.
"""

from __future__ import annotations

import os
from functools import cache

from pyspark.sql import SparkSession

MASTER_ENV = "GTG_SPARK_MASTER"

# Local mode binds the driver to this machine only and runs no UI; small shuffles (the sandbox's data) would
# otherwise pay for Spark's default of 200 partitions. Timestamps are UTC as in DuckDB's models, and Parquet
# timestamps are written as microseconds (what DuckDB and pyarrow read without INT96). Partition overwrite is
# dynamic: an incremental model replaces only the days it recomputed.
CONFIG = {
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.driver.host": "127.0.0.1",
    "spark.driver.bindAddress": "127.0.0.1",
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.shuffle.partitions": os.environ.get("GTG_SPARK_SHUFFLE_PARTITIONS", "2"),
    "spark.sql.sources.partitionOverwriteMode": "dynamic",
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
    "spark.driver.extraJavaOptions": "-Duser.timezone=UTC",
    "spark.executor.extraJavaOptions": "-Duser.timezone=UTC",
}


@cache
def session() -> SparkSession:
    """The process's Spark session (GTG_SPARK_MASTER, default `local[2]`)."""
    builder = SparkSession.builder.master(os.environ.get(MASTER_ENV) or "local[2]").appName("gtg-lakehouse")
    for key, value in CONFIG.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark
