"""The lakehouse backend under the events source: Parquet in Hive-style day partitions, exactly once, the same
rows as the DuckDB backend, and nothing in the source that knows which backend it writes to."""

from __future__ import annotations

import ast
import datetime as dt
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from pipelines.catalog import DECLARED_TABLES
from pipelines.lakehouse import storage
from pipelines.warehouse import BACKEND_ENV, backend
from tests.conftest import Platform
from tests.lakehouse.conftest import twin
from tests.test_ingestion_assets import COUNTS, DAYS, _run

# Ciphertext differs between two encryptions of one value (random nonces); everything else must not.
CIPHERTEXT = {name for columns in DECLARED_TABLES.values() for name, c in columns.items() if c.get("data_type") == "binary"
              and not name.endswith("_bidx") and name != "subject_ref"}


def _rows(con, table: str, leave_out: set[str] = frozenset(), where: str = "TRUE", params: list | None = None) -> list[tuple]:
    """The table's rows (those matching `where`), sorted, without ciphertext, dlt's columns, load times, landed
    paths and `leave_out`."""
    columns = [c for (c,) in con.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema || '.' || table_name = ? "
        "ORDER BY column_name", [table]).fetchall() if c not in CIPHERTEXT and not c.startswith("_dlt")
        and c not in ("loaded_at", "source_file", "file_url", *leave_out)]  # the twins' landing folders differ
    return sorted(con.execute(f"SELECT {', '.join(columns)} FROM {table} WHERE {where}", params or []).fetchall(),
                  key=repr)


def test_events_land_as_day_partitioned_parquet_once_with_the_duckdb_backends_rows(
        platform: Platform, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stats = platform.generate()
    on_duckdb = platform.ingest()
    lake_platform = twin(platform, tmp_path / "lake")
    monkeypatch.setenv(BACKEND_ENV, "lakehouse")
    report = lake_platform.ingest()

    assert report == on_duckdb
    assert (report.events_loaded, report.duplicates_dropped, report.lines_quarantined) == (
        stats.valid_events, stats.duplicate_lines, stats.bad_lines)
    lake = lake_platform.root / "lakehouse"
    assert storage.lake_root(lake_platform.warehouse) == lake
    events = lake / "raw_events" / "usage_events"
    today = dt.datetime.now(dt.timezone.utc).date()
    assert {p.parent.name for p in storage.files(events)} == {f"day={today}"}
    assert sum(pq.read_metadata(p).num_rows for p in storage.files(events)) == stats.valid_events
    # The warehouse file is only a catalog: views over the lake, no table of its own.
    with duckdb.connect(str(lake_platform.warehouse), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM duckdb_tables()").fetchone() == (0,)
        assert {f"{s}.{v}" for s, v in con.execute("SELECT schema_name, view_name FROM duckdb_views() "
                                                       "WHERE NOT internal").fetchall()} >= set(DECLARED_TABLES) - {
            t for t in DECLARED_TABLES if not t.startswith("raw_events.")}
    with duckdb.connect(str(platform.warehouse), read_only=True) as duck, \
            duckdb.connect(str(lake_platform.warehouse), read_only=True) as lakecon:
        for table in ("raw_events.usage_events", "raw_events.usage_events_quarantine", "raw_events.landing_files"):
            assert _rows(lakecon, table) == _rows(duck, table), table

    again = lake_platform.ingest()  # the ledger is read through the catalog: every file is known
    assert (again.files_found, again.files_skipped, again.events_loaded) == (len(stats.files), len(stats.files), 0)
    assert sum(pq.read_metadata(p).num_rows for p in storage.files(events)) == stats.valid_events


def test_a_dagster_day_writes_its_partition_with_exact_counts_and_passing_checks(
        platform: Platform, lakehouse: None) -> None:
    stats = platform.generate()
    results = [_run(platform, day) for day in DAYS]

    assert all(r.success for r in results)
    for day, result in zip(DAYS, results):
        (materialization,) = result.get_asset_materialization_events()
        meta = materialization.materialization.metadata
        assert {k: meta[k].value for k in COUNTS} == {
            "lines_read": stats.lines_by_day[day], "events_loaded": stats.valid_by_day[day],
            "duplicates_dropped": stats.duplicates_by_day[day], "lines_quarantined": stats.bad_by_day[day]}
        assert all(e.passed for e in result.get_asset_check_evaluations())
        assert len(result.get_asset_check_evaluations()) == 5  # the events checks, the opted-out one included
    events = platform.root / "lakehouse" / "raw_events" / "usage_events"
    by_day = {}
    for path in storage.files(events):
        by_day[path.parent.name] = by_day.get(path.parent.name, 0) + pq.read_metadata(path).num_rows
    assert by_day == {f"day={day}": stats.valid_by_day[day] for day in DAYS}


def test_the_backend_is_chosen_in_one_place_and_no_source_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(BACKEND_ENV, "spark-sql")
    with pytest.raises(ValueError, match="choose one of duckdb, lakehouse"):
        backend()
    monkeypatch.delenv(BACKEND_ENV)
    assert backend() == "duckdb"
    root = Path(__file__).resolve().parents[2]
    for path in sorted((root / "pipelines").rglob("*.py")):
        if path.parts[-2] in ("lakehouse",) or path.name == "warehouse.py":
            continue
        tree = ast.parse(path.read_text())
        names = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)} | {
            n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
        imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) for a in n.names} | {
            n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        assert not {"filesystem", "BACKEND_ENV"} & names, path  # (`backend=` of dlt's sql_database is its reader)
        assert not {"pipelines.lakehouse", "lakehouse", "backend"} & imported, path
