"""Analytics: one Dagster asset per SQL model of `dbt_like_sql/`, its header tests as asset checks, and the
read-only snapshot analysts open.

The models are read and checked when this module loads (`assets.sql_models.load_models`): a syntax error
or an unknown table stops `dagster dev` with the file and line. Each model's upstream assets are the tables
its SQL reads — the dlt assets for loaded tables, other models otherwise — so the UI shows one lineage graph
from the landed files to the marts. Every mart also gets a `no_readable_personal_data` check.
"""

import os
from pathlib import Path

from dagster import (
    AssetCheckResult,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    AssetSelection,
    AssetsDefinition,
    Config,
    DefaultScheduleStatus,
    MaterializeResult,
    MetadataValue,
    ScheduleDefinition,
    TableColumn,
    TableSchema,
    asset,
    define_asset_job,
)

from assets.catalog_specs import PII_TAG
from assets.spark_models import build_on_lakehouse
from assets.sql_models import Model, build, failing_rows_sql, load_models, readable_personal_data, check_name
from pipelines.catalog import ASSET_OF_TABLE, DECLARED_TABLES
from pipelines.privacy.categories import CATEGORY_HINT
from pipelines.warehouse import backend, publish_snapshot
from resources.warehouse import WAREHOUSE_POOL, WarehouseResource

MODELS = load_models(set(DECLARED_TABLES))
GROUP = "analytics"
SNAPSHOT_KEY = AssetKey(["analytics", "snapshot"])
PERSONAL_COLUMNS = {name for columns in DECLARED_TABLES.values() for name, col in columns.items()
                    if col.get(CATEGORY_HINT)}


class BuildConfig(Config):
    """`full_refresh` rebuilds incremental models from scratch (after a backfill of old days, say)."""

    full_refresh: bool = False


def model_key(table: str) -> AssetKey:
    """The asset of a table a model reads: a model's own key, or the dlt asset that loads the table."""
    if table in MODELS:
        return AssetKey(table.split("."))
    return AssetKey(list(ASSET_OF_TABLE[table]))


def _check_specs(model: Model) -> list[AssetCheckSpec]:
    key = AssetKey([model.schema, model.name])
    specs = [AssetCheckSpec(check_name(t), asset=key, description=f"{next(iter(t))}: {next(iter(t.values()))}")
             for t in model.tests]
    if model.schema == "analytics":
        specs.append(AssetCheckSpec("no_readable_personal_data", asset=key,
                                    description="No declared personal column, no stray binary column and no "
                                    "value that looks like an e-mail, phone number or IP address."))
    return specs


def _model_asset(model: Model, on_spark: bool) -> AssetsDefinition:
    """The model's asset; `on_spark` (the lakehouse backend) builds it with Spark over the lake
    (`assets.spark_models`) under the same key, with the same checks run the same way on what Spark stored."""
    @asset(
        key=[model.schema, model.name],
        deps=[model_key(t) for t in model.depends_on],
        group_name=GROUP,
        kinds={"spark", "sql"} if on_spark else {"duckdb", "sql"},
        pool=WAREHOUSE_POOL,
        description=model.description,
        check_specs=_check_specs(model),
        metadata={"sql": MetadataValue.path(str(model.path.relative_to(model.path.parents[2]))),
                  "materialized": model.materialized},
        # Pseudonymous keys of people are personal data (erasure reaches them through `subject_columns`).
        tags={PII_TAG: ""} if model.subject_columns else None,
    )
    def build_model(context: AssetExecutionContext, config: BuildConfig, warehouse: WarehouseResource):
        with warehouse.connect(read_only=False) as con:
            if on_spark:
                done = build_on_lakehouse(con, warehouse.path, model, MODELS, DECLARED_TABLES, config.full_refresh)
            else:
                done = build(con, model, config.full_refresh, DECLARED_TABLES)
            yield MaterializeResult(metadata={**{k: v for k, v in done.items() if k != "waiting_for"},
                                              "columns": len(model.columns),
                                              "dagster/row_count": done["rows"],
                                              "dagster/column_schema": _built_schema(con, model),
                                              **({"waiting_for": MetadataValue.json(done["waiting_for"])}
                                                 if "waiting_for" in done else {})})
            for test in model.tests:
                failing = con.execute(failing_rows_sql(model, test)).fetchone()[0]
                yield AssetCheckResult(check_name=check_name(test), passed=failing == 0,
                                       metadata={"failing_rows": int(failing)})
            if model.schema == "analytics":
                found = readable_personal_data(con, model, PERSONAL_COLUMNS)
                yield AssetCheckResult(check_name="no_readable_personal_data", passed=not found,
                                       metadata={"findings": MetadataValue.json(found)})

    return build_model


def _built_schema(con, model: Model) -> TableSchema:
    """The model's columns as built (DuckDB's types) with the header's documentation."""
    types = con.execute("SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = ? "
                        "AND table_name = ? ORDER BY ordinal_position", [model.schema, model.name]).fetchall()
    return TableSchema(columns=[TableColumn(name, type.lower(), description=model.columns.get(name),
                                            tags={PII_TAG: ""} if name in model.subject_columns else {})
                                for name, type in types])


def model_assets(on_spark: bool) -> list[AssetsDefinition]:
    """One asset per model, built by DuckDB or (the lakehouse) by Spark."""
    return [_model_asset(model, on_spark) for model in MODELS.values()]


MODEL_ASSETS = model_assets(backend() == "lakehouse")


@asset(
    key=SNAPSHOT_KEY,
    deps=[AssetKey(m.table.split(".")) for m in MODELS.values() if m.schema == "analytics"],
    group_name=GROUP,
    kinds={"duckdb"},
    pool=WAREHOUSE_POOL,
    description="A read-only copy of the analytics schema for analysts, swapped in atomically after each build: "
    "an open analyst connection never blocks a pipeline and never sees half a build.",
)
def analytics_snapshot(context: AssetExecutionContext, warehouse: WarehouseResource) -> MaterializeResult:
    with warehouse.connect(read_only=False) as con:
        published = publish_snapshot(con, snapshot_path(warehouse))
    return MaterializeResult(metadata={"path": MetadataValue.path(str(snapshot_path(warehouse))),
                                       "tables": MetadataValue.json(published)})


def snapshot_path(warehouse: WarehouseResource) -> Path:
    """GTG_SNAPSHOT_PATH, default `analytics_snapshot.duckdb` beside the warehouse (not `analytics.duckdb`:
    DuckDB names the catalog after the file, and `analytics.sessions` would then be ambiguous)."""
    return Path(os.environ.get("GTG_SNAPSHOT_PATH") or Path(warehouse.path).with_name("analytics_snapshot.duckdb"))


ANALYTICS_ASSETS = [*MODEL_ASSETS, analytics_snapshot]

analytics_job = define_asset_job(
    "analytics_job",
    selection=AssetSelection.assets(*ANALYTICS_ASSETS),
    description="Build every SQL model (incrementally where declared), run its tests, publish the snapshot.",
)

analytics_schedule = ScheduleDefinition(
    job=analytics_job, cron_schedule="15 * * * *", execution_timezone="UTC",
    default_status=DefaultScheduleStatus.RUNNING,
)
