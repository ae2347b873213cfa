"""The SQL models on Spark over the lakehouse equal the same models on DuckDB: every model, every row."""

from __future__ import annotations

import datetime as dt
import math
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest
from dagster import DagsterInstance, materialize

from assets.analytics import MODELS, SNAPSHOT_KEY, analytics_snapshot, model_assets
from assets.spark_models import build_all, spark_sql, variables, view_name
from assets.sql_models import build, build_order
from pipelines.catalog import DECLARED_TABLES
from pipelines.warehouse import BACKEND_ENV
from resources.warehouse import WarehouseResource
from tests.conftest import END_DATE, Platform
from tests.lakehouse.conftest import twin


def _value(value):
    """One cell as both engines can agree on it: instants in UTC, numbers to 9 significant digits (sums of
    doubles differ in their last bits with the order of addition), binary as bytes."""
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.timezone.utc) if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)
    if isinstance(value, (float, Decimal)):
        return float(f"{float(value):.9g}") if math.isfinite(value) else value
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    return value


# A load's own id differs between two loads of the same events; nothing else may.
LOAD_IDS = {"load_id"}


def _normalised(columns: list[str], rows) -> tuple[list[str], list[tuple]]:
    order = sorted((i for i in range(len(columns)) if columns[i] not in LOAD_IDS), key=columns.__getitem__)
    return [columns[i] for i in order], sorted((tuple(_value(row[i]) for i in order) for row in rows), key=repr)


def test_the_same_events_through_both_backends_give_identical_models(
        generated: Platform, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, spark) -> None:
    with duckdb.connect(str(generated.warehouse)) as con:
        for model in build_order(MODELS):
            build(con, model, True, DECLARED_TABLES)
        on_duckdb = {m: _normalised([d[0] for d in con.execute(f"SELECT * FROM {m}").description],
                                    con.execute(f"SELECT * FROM {m}").fetchall()) for m in MODELS}
    lake_platform = twin(generated, tmp_path / "lake")
    monkeypatch.setenv(BACKEND_ENV, "lakehouse")
    lake_platform.ingest()

    built = build_all(spark, lake_platform.root / "lakehouse", MODELS, DECLARED_TABLES)

    assert set(built) == set(MODELS)
    for table in MODELS:
        frame = spark.table(view_name(table))
        on_spark = _normalised(frame.columns, frame.collect())
        assert on_spark[0] == on_duckdb[table][0], table
        assert len(on_spark[1]) == len(on_duckdb[table][1]) == built[table], table
        assert on_spark[1] == on_duckdb[table][1], table
    # The event marts hold rows: the comparison compared something.
    event_marts = [t for t, m in MODELS.items() if set(m.datasets) == {"raw_events"}]
    assert len(event_marts) == 8 and all(built[t] > 0 for t in event_marts)
    assert built["staging.stg_events"] == generated.query("SELECT count(*) FROM raw_events.usage_events")[0][0]


def test_what_spark_lacks_the_runner_supplies_not_the_model() -> None:
    sql = spark_sql(MODELS["analytics.sessions"], variables("2026-11-20", "1764000000.1"))
    assert "GETVARIABLE" not in sql.upper() and "EPOCH" not in sql.upper()
    assert "CAST('2026-11-20' AS DATE)" in sql and "load_id > '1764000000.1'" in sql
    assert "FROM staging__stg_events AS stg_events" in sql
    durations = spark_sql(MODELS["analytics.session_durations"], variables())
    assert "ELEMENT_AT(ARRAY('0-10s'" in durations  # DuckDB lists are 1-based, Spark's [i] is 0-based
    with pytest.raises(ValueError, match="getvariable\\('gtg_since'\\) has no value"):
        spark_sql(MODELS["analytics.visitor_days"], {})


def test_on_the_lakehouse_the_model_assets_build_on_spark_with_the_same_keys_and_checks(
        generated: Platform, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, spark) -> None:
    on_duckdb, on_spark = model_assets(False), model_assets(True)
    assert [a.key for a in on_spark] == [a.key for a in on_duckdb]
    assert [sorted(map(str, a.check_keys)) for a in on_spark] == [sorted(map(str, a.check_keys)) for a in on_duckdb]
    assert all(a.specs_by_key[a.key].kinds == {"spark", "sql"} for a in on_spark)
    with duckdb.connect(str(generated.warehouse)) as con:
        for model in build_order(MODELS):
            build(con, model, True, DECLARED_TABLES)
        expected = {m: _normalised([d[0] for d in con.execute(f"SELECT * FROM {m}").description],
                                   con.execute(f"SELECT * FROM {m}").fetchall()) for m in MODELS}
    lake_platform = twin(generated, tmp_path / "lake")
    monkeypatch.setenv(BACKEND_ENV, "lakehouse")
    lake_platform.ingest()
    warehouse = WarehouseResource(path=str(lake_platform.warehouse), dlt_dir=str(lake_platform.dlt_dir),
                                  work_dir=str(lake_platform.work_dir))

    result = materialize([*on_spark, analytics_snapshot], resources={"warehouse": warehouse},
                         instance=DagsterInstance.ephemeral())

    assert result.success
    rows = {"/".join(m.asset_key.path): m.metadata["dagster/row_count"].value
            for m in (e.materialization for e in result.get_asset_materialization_events())
            if m.asset_key != SNAPSHOT_KEY}
    assert rows == {m.replace(".", "/"): len(expected[m][1]) for m in MODELS}
    checks = result.get_asset_check_evaluations()
    assert len(checks) == sum(len(a.check_keys) for a in on_spark) and all(c.passed for c in checks)
    # Spark's tables are Parquet in the lake; views are views in the catalog; DuckDB reads both as it reads the
    # DuckDB backend's models, every row equal.
    lake = lake_platform.root / "lakehouse"
    assert {f"{s.name}.{t.name}" for s in (lake / "analytics", lake / "staging") if s.is_dir() for t in s.iterdir()} == {
        t for t, m in MODELS.items() if m.materialized != "view"}
    assert (lake / "analytics" / "sessions" / f"session_date={END_DATE}").is_dir()
    with duckdb.connect(str(lake_platform.warehouse), read_only=True) as con:
        for table in MODELS:
            found = con.execute(f"SELECT * FROM {table}")
            assert _normalised([d[0] for d in found.description], found.fetchall()) == expected[table], table
    with duckdb.connect(str(lake_platform.warehouse.with_name("analytics_snapshot.duckdb")), read_only=True) as snapshot:
        assert snapshot.execute("SELECT count(*) FROM analytics.sessions").fetchone()[0] == len(
            expected["analytics.sessions"][1]) > 0
