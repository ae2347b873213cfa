"""The lakehouse backend: raw tables as Hive-partitioned Parquet written by dlt's filesystem destination, and
Apache Spark running the SQL models over them (opt-in: GTG_WAREHOUSE_BACKEND=lakehouse)."""
