"""The SQL models of `dbt_like_sql/` on Spark over the lakehouse: the same files, transpiled by sqlglot.

The models stay DuckDB SQL, read and checked by `assets.sql_models`. Here each one is parsed by sqlglot, given
what Spark lacks, and written as Spark SQL:
- `getvariable(...)` (DuckDB's session variables) becomes the value the build sets (a full build: 1970-01-01
  and ''; an incremental one: its window, as on DuckDB), as a typed literal;
- `epoch(a - b)` of two timestamps (an interval's seconds) becomes the difference of their `unix_micros`, and
  `epoch_us(t)` becomes `unix_micros(t)` (sqlglot writes `unix_timestamp`, which takes no interval);
- `timezone(zone, t)` of a UTC timestamp (its wall-clock time in `zone`) becomes `from_utc_timestamp(t, zone)`
  (the session's time zone is UTC);
- a list indexed by a column (`[...][i]`, 1-based in DuckDB) becomes `element_at` (Spark's `[i]` is 0-based,
  and sqlglot shifts only literal indexes);
- `(a, b) IN (SELECT (a, b) ...)` selects the columns themselves (Spark compares a row to the columns, not to
  one struct);
- `UNION ALL BY NAME` of `SELECT *` branches (the ad report's marts) selects the model's declared columns by
  name in every branch, then unions them by position (Spark SQL has no BY NAME);
- `schema.table` names become the temporary views `schema__table` the build registers.
Sources not loaded yet read as empty, typed from their declaration (as on DuckDB: `sql_models._bound_sql`).

Tables (and incremental models) are written as Parquet under `<lake>/<schema>/<model>/` (incremental ones
partitioned by their key, one folder per day). A full build replaces every partition (static overwrite: a day
no longer in the result, one retention deleted say, leaves with the rest); an incremental one (a Dagster step
on a model already built) overwrites only the days its window changed (dynamic overwrite). Views stay views.
Each model is registered as a view for the models after it.

As Dagster assets (`build_on_lakehouse`, called by `assets.analytics` when the backend is the lakehouse) each model
is its own step, possibly in another process than the models it reads (a Celery worker): the step registers its
sources from the lake and the models it reads from their stored Parquet (views by their SQL), builds, and
registers what it stored in the warehouse catalog, where the model's checks and the analysts' snapshot read it
with DuckDB as on the DuckDB backend. A view model becomes a DuckDB view in the catalog (its DuckDB SQL over the
catalog's views) for the same readers.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq
import sqlglot
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.pandas.types import to_arrow_schema
from sqlglot import exp

from assets import model_loads
from assets.sql_models import FULL_BUILD_SINCE, Model, _bound_sql, _latest, build_order, window
from pipelines.lakehouse import spark as spark_session
from pipelines.lakehouse import storage

# The file an empty partitioned model is stored as: Spark writes no file at all for it, and a reader needs the
# columns and their types.
EMPTY_FILE = "part-00000-empty.parquet"


def view_name(table: str) -> str:
    """The temporary view of `schema.table` (Spark's session catalogue has no schemas for temporary views)."""
    return table.replace(".", "__")


def variables(since: str = FULL_BUILD_SINCE, loaded_after: str = "") -> dict[str, exp.Expression]:
    """The values of the models' `getvariable` names for a build from `since`, as Spark literals."""
    return {"gtg_since": exp.cast(exp.Literal.string(since), exp.DataType.build("DATE")),
            "gtg_loaded_after": exp.Literal.string(loaded_after)}


def spark_sql(model: Model, values: dict[str, exp.Expression], missing: list[str] = (),
              sources: dict[str, dict[str, Any]] | None = None) -> str:
    """The model's SELECT as Spark SQL (see the module's docstring for what the runner supplies)."""
    tree = sqlglot.parse_one(_bound_sql(model, list(missing), sources or {}), dialect="duckdb")

    def supply(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Anonymous) and node.name.lower() == "getvariable":
            name = node.expressions[0].name
            if name not in values:
                raise ValueError(f"{model.path}: getvariable({name!r}) has no value in a Spark build")
            return values[name].copy()
        if isinstance(node, exp.Anonymous) and node.name.lower() == "timezone" and len(node.expressions) == 2:
            zone, moment = node.expressions
            return exp.func("from_utc_timestamp", moment, zone)
        if isinstance(node, exp.Anonymous) and node.name.lower() == "epoch_us":
            return exp.func("unix_micros", *node.expressions)
        if isinstance(node, exp.TimeToUnix):
            inner = node.this
            if isinstance(inner, exp.Sub):
                micros = exp.Sub(this=exp.func("unix_micros", inner.this), expression=exp.func("unix_micros", inner.expression))
            else:
                micros = exp.func("unix_micros", inner)
            return exp.Div(this=exp.paren(micros), expression=exp.Literal.number("1000000.0"))
        if isinstance(node, exp.Bracket) and not all(isinstance(i, exp.Literal) for i in node.expressions):
            return exp.func("element_at", node.this, *node.expressions)
        if isinstance(node, exp.In) and node.args.get("query"):
            select = node.args["query"].this if isinstance(node.args["query"], exp.Subquery) else node.args["query"]
            if isinstance(select, exp.Select) and len(select.expressions) == 1 and isinstance(select.expressions[0], exp.Tuple):
                select.set("expressions", select.expressions[0].expressions)
            return node
        if isinstance(node, exp.Union) and node.args.get("by_name"):
            for side in ("this", "expression"):
                branch = node.args[side]
                if isinstance(branch, exp.Select) and [e.sql() for e in branch.expressions] == ["*"]:
                    branch.set("expressions", [exp.column(name) for name in model.columns])
                elif not isinstance(branch, exp.Union):
                    raise ValueError(f"{model.path}: UNION BY NAME on Spark needs `SELECT *` branches")
            node.set("by_name", None)
            return node
        if isinstance(node, exp.Table) and node.db:
            return exp.Table(this=exp.to_identifier(view_name(f"{node.db}.{node.name}")),
                             alias=exp.TableAlias(this=exp.to_identifier(node.alias_or_name)))
        return node

    return tree.transform(supply).sql(dialect="spark")


def register_sources(spark: SparkSession, lake: Path, sources: dict[str, dict[str, Any]]) -> list[str]:
    """A view for every declared source table with files in the lake; returns the tables not loaded yet.

    The day partitions are storage, not columns (`recursiveFileLookup` reads every file without inferring
    them), as in the DuckDB catalog."""
    loaded = storage.table_dirs(lake)
    for table in sources:
        if table in loaded:
            (spark.read.option("recursiveFileLookup", "true").option("mergeSchema", "true")
             .parquet(str(loaded[table])).createOrReplaceTempView(view_name(table)))
    return [t for t in sources if t not in loaded]


def build_all(spark: SparkSession, lake: Path, models: dict[str, Model],
              sources: dict[str, dict[str, Any]]) -> dict[str, int]:
    """A full build of every model on Spark, in dependency order; returns rows per model."""
    missing = register_sources(spark, lake, sources)
    values = variables()
    built: dict[str, int] = {}
    for model in build_order(models):
        frame = spark.sql(spark_sql(model, values, [t for t in model.depends_on if t in missing], sources))
        built[model.table] = _store(spark, lake, model, frame).count()
    return built


def build_on_lakehouse(con: duckdb.DuckDBPyConnection, warehouse_path: str | Path, model: Model,
                       models: dict[str, Model], sources: dict[str, dict[str, Any]],
                       full_refresh: bool = False) -> dict[str, Any]:
    """Build one model over the lake as a Dagster step does (see the module's docstring) and make it readable
    through `con`, the warehouse catalog held for writing; returns what it did, as `sql_models.build` does.

    An incremental model recomputes what `sql_models.build` would on DuckDB (`sql_models.window`, read through
    the catalog: its latest stored day, what its last build reflected, the days later loads touched) and
    overwrites only the day partitions that changed (`_overwrite_days`); `full_refresh` rebuilds it whole."""
    lake = storage.lake_root(warehouse_path)
    loaded = storage.table_dirs(lake)
    missing = [t for t in model.depends_on if t in sources and t not in loaded]
    since, loaded_after = FULL_BUILD_SINCE, ""
    tracked = model.materialized == "incremental" and (bool(model.trackers) or model.load_aware)
    if model.materialized == "view":
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {model.schema}; "
                    f"CREATE OR REPLACE VIEW {model.table} AS {_bound_sql(model, missing, sources)}")
        rows = con.execute(f"SELECT count(*) FROM {model.table}").fetchone()[0]
    else:
        if model.materialized == "incremental" and not full_refresh:
            since, loaded_after = window(con, model, _latest(con, model))
        loaded_until = model_loads.completed(con, model.datasets) if tracked else ""  # before reading
        spark = spark_session.session()
        register_sources(spark, lake, {t: sources[t] for t in _sources_read(model, models, sources)})
        _register_upstream(spark, lake, model, models, sources, loaded)
        frame = spark.sql(spark_sql(model, variables(since, loaded_after), missing, sources))
        if since == FULL_BUILD_SINCE:
            rows = _store(spark, lake, model, frame).count()
        else:
            rows = _overwrite_days(spark, lake, model, frame, since).count()
        storage.register(con, model.table, lake / model.schema / model.name)
        if tracked:
            model_loads.remember(con, model.table, loaded_until)
    return {"mode": "full" if since == FULL_BUILD_SINCE else "incremental", "since": since, "rows": rows,
            "engine": "spark" if model.materialized != "view" else "duckdb view",
            **({"waiting_for": missing} if missing else {}), **({"loaded_after": loaded_after} if tracked else {})}


def _overwrite_days(spark: SparkSession, lake: Path, model: Model, fresh: DataFrame, since: str) -> DataFrame:
    """Replace what an incremental build recomputed, as `sql_models._replace_partitions` does on DuckDB, by
    overwriting only the day partitions (`<incremental_key>=YYYY-MM-DD`) it changes, with Spark's dynamic
    partition overwrite; every other day keeps its files. Without `partition_by` the recomputed rows replace
    every day from `since` on; with it, each partition they fall in is replaced from their earliest day in it
    on, so a day partition is rewritten with the rows it keeps and the recomputed ones. A day left with no row
    is removed. Returns the stored model, registered."""
    folder = lake / model.schema / model.name
    key = F.col(model.incremental_key)
    if not model.partition_by:
        fresh = fresh.where(key >= F.lit(since).cast("date"))  # never a day twice
    fresh = fresh.localCheckpoint()  # computed once: read for its days, then written
    stored = spark.read.schema(fresh.schema).parquet(str(folder))
    if model.partition_by:
        starts = fresh.groupBy(*model.partition_by).agg(F.min(key).alias("_gtg_since"))
        flagged = stored.join(starts, list(model.partition_by), "left").withColumn(
            "_gtg_replaced", F.coalesce(key >= F.col("_gtg_since"), F.lit(False))).drop("_gtg_since")
    else:
        flagged = stored.withColumn("_gtg_replaced", key >= F.lit(since).cast("date"))
    days = {row[0] for row in flagged.where("_gtg_replaced").select(key).distinct().collect()}
    days |= {row[0] for row in fresh.select(key).distinct().collect()}
    # Materialised before the write, which replaces the files these rows are read from.
    kept = flagged.where(key.isin(list(days)) & ~F.col("_gtg_replaced")).select(*fresh.columns).localCheckpoint()
    rewritten = kept.unionByName(fresh)
    (rewritten.write.mode("overwrite").option("partitionOverwriteMode", "dynamic")
     .partitionBy(model.incremental_key).parquet(str(folder)))
    for day in days - {row[0] for row in rewritten.select(key).distinct().collect()} - {None}:
        shutil.rmtree(folder / f"{model.incremental_key}={day.isoformat()}")
    if not storage.files(folder):
        pq.write_table(to_arrow_schema(fresh.schema).empty_table(), folder / EMPTY_FILE)
    stored = spark.read.schema(fresh.schema).parquet(str(folder))
    stored.createOrReplaceTempView(view_name(model.table))
    return stored


def _sources_read(model: Model, models: dict[str, Model], sources: dict[str, dict[str, Any]]) -> set[str]:
    """The loaded tables the model reads itself or through the views it reads (a stored model is read as built)."""
    found = {t for t in model.depends_on if t in sources}
    for table in model.depends_on:
        if table in models and models[table].materialized == "view":
            found |= _sources_read(models[table], models, sources)
    return found


def _register_upstream(spark: SparkSession, lake: Path, model: Model, models: dict[str, Model],
                       sources: dict[str, dict[str, Any]], loaded: dict[str, Path]) -> None:
    """Register the models `model` reads: stored ones from their Parquet, views by their SQL (their own upstream
    first). A stored model not built yet stops the build with its name: Dagster builds it first."""
    for table in model.depends_on:
        if table not in models:
            continue
        upstream = models[table]
        if upstream.materialized == "view":
            _register_upstream(spark, lake, upstream, models, sources, loaded)
            missing = [t for t in upstream.depends_on if t in sources and t not in loaded]
            spark.sql(spark_sql(upstream, variables(), missing, sources)).createOrReplaceTempView(view_name(table))
            continue
        folder = lake / upstream.schema / upstream.name
        if not folder.is_dir() or not storage.files(folder):
            raise RuntimeError(f"{model.table} reads {table}, which is not built on the lakehouse yet")
        spark.read.parquet(str(folder)).createOrReplaceTempView(view_name(table))


def _store(spark: SparkSession, lake: Path, model: Model, frame: DataFrame) -> DataFrame:
    """Write a table model as Parquet (an incremental one partitioned by its key) and register the stored copy;
    a view is registered as it is. An empty partitioned model is stored as one empty file holding its columns."""
    if model.materialized != "view":
        folder = lake / model.schema / model.name
        writer = frame.write.mode("overwrite").option("partitionOverwriteMode", "static")
        if model.materialized == "incremental":
            writer = writer.partitionBy(model.incremental_key)
        writer.parquet(str(folder))
        if not storage.files(folder):
            pq.write_table(to_arrow_schema(frame.schema).empty_table(), folder / EMPTY_FILE)
        frame = spark.read.schema(frame.schema).parquet(str(folder))
    frame.createOrReplaceTempView(view_name(model.table))
    return frame
