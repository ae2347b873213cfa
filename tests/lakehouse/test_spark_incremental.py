"""Incremental model builds on Spark overwrite only the day partitions that later loads touched, and equal both a
full Spark build and DuckDB: real generated landing files (late events included), real loads on both backends."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import duckdb
import pytest

from assets.analytics import MODELS
from assets.spark_models import build_on_lakehouse
from assets.sql_models import build, build_order
from pipelines.catalog import DECLARED_TABLES
from pipelines.sandbox.events import generate_events
from pipelines.warehouse import BACKEND_ENV
from tests.conftest import Platform
from tests.lakehouse.conftest import twin
from tests.lakehouse.test_spark_models import _normalised

END = dt.date(2026, 11, 24)
INCREMENTAL = [t for t, m in MODELS.items() if m.materialized == "incremental"]


def _with_upstream(tables: list[str]) -> dict:
    """`tables` and every model they read or their tests read, directly or not."""
    found, pending = {}, list(tables)
    while pending:
        table = pending.pop()
        if table in MODELS and table not in found:
            found[table] = MODELS[table]
            pending += MODELS[table].depends_on
    return found


# The incremental models and the models they read (tables are always built whole: tests/lakehouse/test_spark_models).
BUILT = _with_upstream(INCREMENTAL)
# Models whose day partitions before the window are never rewritten: a grain's week or month (active_users) and
# today's snapshot (contact_lists_daily) start before it or are the window.
DAILY = [t for t in INCREMENTAL if t not in ("analytics.active_users", "analytics.contact_lists_daily")]


def _every_model(warehouse: Path) -> dict[str, tuple[list[str], list[tuple]]]:
    found = {}
    with duckdb.connect(str(warehouse), read_only=True) as con:
        for table in BUILT:
            rows = con.execute(f"SELECT * FROM {table}")
            found[table] = _normalised([d[0] for d in rows.description], rows.fetchall())
    return found


def _build_on_spark(platform: Platform, full_refresh: bool = False) -> dict[str, dict]:
    with duckdb.connect(str(platform.warehouse)) as con:
        return {m.table: build_on_lakehouse(con, platform.warehouse, m, MODELS, DECLARED_TABLES, full_refresh)
                for m in build_order(BUILT)}


def _day_files(folder: Path, key: str) -> dict[dt.date, dict[str, int]]:
    """Each day partition of a stored model: its files' names and modification times."""
    return {dt.date.fromisoformat(day.name.removeprefix(f"{key}=")): {f.name: f.stat().st_mtime_ns
                                                                     for f in day.glob("*.parquet")}
            for day in folder.glob(f"{key}=*")}


def test_an_incremental_spark_build_rewrites_only_the_touched_days_and_equals_full_builds(
        platform: Platform, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, spark) -> None:
    incoming = tmp_path / "incoming"
    generate_events(str(incoming), events=6000, seed=23, days=6, end_date=END, file_events=100_000,
                    bad_share=0.01, duplicate_share=0.01, workspaces_path=platform.workspaces_path)
    *first, last = sorted(incoming.iterdir())
    platform.landing.mkdir(parents=True)
    for folder in first:
        shutil.copytree(folder, platform.landing / folder.name)
    platform.ingest()
    lake_platform = twin(platform, tmp_path / "lake")
    shutil.copytree(last, platform.landing / last.name)
    platform.ingest()
    with duckdb.connect(str(platform.warehouse)) as con:
        for model in build_order(BUILT):
            build(con, model, True, DECLARED_TABLES)
    on_duckdb = _every_model(platform.warehouse)

    monkeypatch.setenv(BACKEND_ENV, "lakehouse")
    lake_platform.ingest()
    first_build = _build_on_spark(lake_platform)
    lake = lake_platform.root / "lakehouse"
    before = {t: _day_files(lake / t.replace(".", "/"), MODELS[t].incremental_key) for t in INCREMENTAL}
    shutil.copytree(last, lake_platform.landing / last.name)  # the newest day, with events of earlier days
    lake_platform.ingest()
    late = lake_platform.query("SELECT min(event_date), count(*) FILTER (WHERE event_date < ?) FROM "
                               "staging.stg_events WHERE load_id = (SELECT max(load_id) FROM raw_events._dlt_loads)",
                               [END - dt.timedelta(days=1)])[0]

    second_build = _build_on_spark(lake_platform)

    assert {t: b["mode"] for t, b in first_build.items() if MODELS[t].materialized != "view"} == {
        t: "full" for t, m in BUILT.items() if m.materialized != "view"}
    # A model built empty (no contact list loaded: contact_lists_daily) is built whole again, as on DuckDB.
    assert {t: second_build[t]["mode"] for t in INCREMENTAL} == {
        t: "incremental" if first_build[t]["rows"] else "full" for t in INCREMENTAL}
    assert [t for t in INCREMENTAL if not first_build[t]["rows"]] == ["analytics.contact_lists_daily"]
    assert late[1] > 0 and late[0] < END - dt.timedelta(days=1)  # late events of older days arrived
    for table in DAILY:
        key, since = MODELS[table].incremental_key, dt.date.fromisoformat(second_build[table]["since"])
        after = _day_files(lake / table.replace(".", "/"), key)
        # Each build recomputes from the earliest day the new load touched (less its lookback), not from its
        # own latest day: the late events reach it.
        assert since == late[0] - dt.timedelta(days=MODELS[table].lookback_days), table
        untouched = {day for day in before[table] if day < since - dt.timedelta(days=1)}
        assert untouched and all(after[day] == before[table][day] for day in untouched), table
        assert END in after and END not in before[table], table  # the new day
        assert all(not set(after[day]) & set(before[table][day]) for day in after if day >= since
                   and day in before[table] and table != "analytics.sessions"), table  # rewritten days
    # Every model built, every row: as a full Spark build of the same loads, and as DuckDB.
    incremental = _every_model(lake_platform.warehouse)
    assert incremental == on_duckdb
    assert all(len(incremental[t][1]) > 0 for t in [*DAILY, "analytics.active_users"])
    full = _build_on_spark(lake_platform, full_refresh=True)
    assert {b["mode"] for b in full.values()} == {"full"}
    assert _every_model(lake_platform.warehouse) == incremental
