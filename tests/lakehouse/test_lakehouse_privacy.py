"""Retention and the data-subject request batch on the lakehouse: the same Dagster assets as on DuckDB, their SQL
run on a working copy, only the changed Parquet files rewritten, the models still building on Spark after."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from pathlib import Path

import duckdb
import pytest
from dagster import AssetSelection, DagsterInstance, Definitions, define_asset_job

from assets.analytics import MODELS, analytics_job, analytics_snapshot, model_assets
from assets.privacy import POLICY, PRIVACY_ASSETS, PRIVACY_CHECKS, RETENTION_CHECKS, requests_job, retention_job
from pipelines.catalog import DECLARED_TABLES
from pipelines.lakehouse import storage
from pipelines.lakehouse.erasure import subject_column
from pipelines.lakehouse.working_copy import working_copy
from pipelines.privacy.requests import Request
from pipelines.warehouse import BACKEND_ENV, warehouse_lock
from tests.conftest import Platform, landed_lines
from tests.lakehouse.conftest import twin
from tests.privacy.test_requests import _files_containing
from tests.test_ingestion_assets import DAYS, _run
from tests.test_privacy_assets import AS_OF, _as_of, _privacy
from tests.test_privacy_assets import _defs as privacy_defs

EVENTS = "raw_events.usage_events"
checks_only_job = define_asset_job("retention_checks_only", selection=AssetSelection.checks(*RETENTION_CHECKS))


def _defs(platform: Platform, on_spark: bool) -> Definitions:
    """The privacy tests' definitions with the models built by DuckDB or by Spark."""
    return Definitions(assets=[*PRIVACY_ASSETS, *model_assets(on_spark), analytics_snapshot], asset_checks=PRIVACY_CHECKS,
                       jobs=[retention_job, requests_job, checks_only_job, analytics_job],
                       resources=privacy_defs(platform).resources)


def _lake_bytes(lake: Path) -> dict[str, bytes]:
    return {str(p.relative_to(lake)): p.read_bytes() for p in sorted(lake.rglob("*.parquet"))}


def _retention(defs: Definitions, instance: DagsterInstance) -> tuple[dict[str, int], dict[str, int]]:
    """The retention checks' findings at AS_OF, then the retention job's rows expired per rule (every check
    passing after it)."""
    before = defs.resolve_job_def("retention_checks_only").execute_in_process(
        instance=instance, run_config=_as_of("retention_checks_only", defs), raise_on_error=False)
    failing = {e.check_name: e.metadata["records_past_retention"].value for e in before.get_asset_check_evaluations()
               if "records_past_retention" in e.metadata}
    result = defs.resolve_job_def("privacy_retention_job").execute_in_process(
        instance=instance, run_config=_as_of("privacy_retention_job", defs))
    assert result.success and all(e.passed for e in result.get_asset_check_evaluations())
    return failing, {e.asset_key.path[-1]: e.materialization.metadata["rows_expired"].value
                     for e in result.get_asset_materialization_events() if e.asset_key.path[2] != "landed"}


def _erasure(platform: Platform, defs: Definitions, instance: DagsterInstance, ws: str, user_id: str) -> dict[str, int]:
    """One erasure request through the request batch; its rows removed per table."""
    inbox = _privacy(platform).inbox()
    erasure = inbox.submit(Request("erasure", ws, "user_id", user_id, requested_by="dpo@gtgcrm.test"))
    done = defs.resolve_job_def("data_subject_requests_job").execute_in_process(instance=instance)
    assert done.success and inbox.get(erasure)["status"] == "completed"
    (materialization,) = done.get_asset_materialization_events()
    return materialization.materialization.metadata["rows_by_table"].value


def test_retention_and_an_erasure_request_run_on_the_lakehouse_as_on_duckdb(
        platform: Platform, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, spark) -> None:
    platform.generate()
    counts = Counter((r.get("workspace_id"), r.get("user_id")) for r in landed_lines(platform.landing)
                     if isinstance(r.get("user_id"), str))
    (ws, user_id), _ = counts.most_common(1)[0]
    duck = twin(platform, tmp_path / "duckdb")
    duck.ingest()
    duck_defs, duck_instance = _defs(duck, False), DagsterInstance.ephemeral()
    assert duck_defs.resolve_job_def("analytics_job").execute_in_process(instance=duck_instance).success
    on_duckdb = _retention(duck_defs, duck_instance)
    erased_on_duckdb = _erasure(duck, duck_defs, duck_instance, ws, user_id)

    monkeypatch.setenv(BACKEND_ENV, "lakehouse")
    platform.ingest()
    defs, instance = _defs(platform, True), DagsterInstance.ephemeral()
    lake = platform.root / "lakehouse"
    assert defs.resolve_job_def("analytics_job").execute_in_process(instance=instance).success
    cutoff_day = dt.date.fromisoformat(AS_OF[:10]) - dt.timedelta(days=395)
    quarantine_cutoff = dt.date.fromisoformat(AS_OF[:10]) - dt.timedelta(days=30)
    old_sessions, sessions = platform.query("SELECT count(*) FILTER (session_date < ?), count(*) FROM analytics.sessions",
                                            [cutoff_day])[0]
    untouched = {name: data for name, data in _lake_bytes(lake).items()  # days with nothing past retention
                 if name.startswith("analytics/sessions/") and name.split("/")[2] >= f"session_date={cutoff_day}"}
    assert untouched and old_sessions

    found, expired = _retention(defs, instance)

    # The same findings and the same rows expired, rule by rule, as on DuckDB (and something to expire).
    assert (found, expired) == on_duckdb
    assert expired["anonymise_sessions"] == old_sessions and found["within_retention__usage_events"] > 0
    # Rewritten in the lake itself: old sessions keep their aggregates and lose the visitor's key, the quarantine's
    # old lines are gone, and the days with nothing expired keep their files byte for byte.
    assert platform.query("SELECT count(*), count(visitor_key) FROM analytics.sessions WHERE session_date < ?",
                          [cutoff_day]) == [(old_sessions, 0)]
    assert platform.query("SELECT count(*) FROM analytics.sessions")[0][0] == sessions
    assert platform.query("SELECT count(*) FROM raw_events.usage_events_quarantine WHERE received_date < ?",
                          [quarantine_cutoff]) == [(0,)]
    assert {n: d for n, d in _lake_bytes(lake).items() if n in untouched} == untouched

    # An erasure request: the same rows leave the lake tables as leave DuckDB's, and nothing of the person is left.
    with platform.keyring() as cipher:
        bidx = cipher.blind_index(ws, [user_id], kind="user.unique_id").to_pylist()[0]
    subjects = {r for (r,) in platform.query(f"SELECT DISTINCT subject_ref FROM {EVENTS} "
                                             "WHERE workspace_id = ? AND user_id_bidx = ?", [ws, bidx])}

    tracked = [t for t, m in MODELS.items() if m.trackers or m.load_aware]
    assert sorted(r for (r,) in platform.query("SELECT model FROM staging._model_loads")) == sorted(tracked)

    assert _erasure(platform, defs, instance, ws, user_id) == erased_on_duckdb

    assert erased_on_duckdb[EVENTS] > 0 and subjects
    for table, columns in DECLARED_TABLES.items():
        column = subject_column(columns)
        if column and table in storage.table_dirs(lake):
            assert platform.query(f"SELECT count(*) FROM {table} WHERE workspace_id = ? AND list_contains(?, {column})",
                                  [ws, list(subjects)]) == [(0,)], table
    lake_bytes = b"".join(_lake_bytes(lake).values())
    assert not any(s in lake_bytes for s in subjects) and bidx not in lake_bytes
    assert _files_containing(platform.root, {user_id}) == {}
    # The models build again on Spark from what is left (rewritten files included), the tracked ones whole: the
    # request batch forgot what their builds reflected, as on DuckDB.
    assert platform.query("SELECT count(*) FROM staging._model_loads") == [(0,)]
    rebuilt = defs.resolve_job_def("analytics_job").execute_in_process(instance=instance)
    assert rebuilt.success
    modes = {".".join(e.asset_key.path): e.materialization.metadata["mode"].value
             for e in rebuilt.get_asset_materialization_events() if "mode" in e.materialization.metadata}
    assert {t: modes[t] for t in tracked} == {t: "full" for t in tracked}
    assert platform.query("SELECT count(*) FROM analytics.visitor_days WHERE workspace_id = ? AND visitor_key = ?",
                          [ws, bidx]) == [(0,)]


def test_a_working_copy_writes_back_only_changed_files_and_refuses_inserts(platform: Platform, lakehouse: None) -> None:
    platform.generate()
    assert all(_run(platform, day).success for day in DAYS)  # one day partition each
    lake = platform.root / "lakehouse"
    before = _lake_bytes(lake)
    with warehouse_lock(platform.warehouse, "working copy test"):
        with working_copy(platform.warehouse, [EVENTS]) as con:
            (day,) = con.execute(f"SELECT min(received_date) FROM {EVENTS}").fetchone()
            others = con.execute(f"SELECT count(*) FILTER (ip IS NULL), count(*) FROM {EVENTS} "
                                 "WHERE received_date <> ?", [day]).fetchone()
            changed = con.execute(f"UPDATE {EVENTS} SET ip = NULL WHERE received_date = ?", [day]).fetchone()[0]
        with pytest.raises(RuntimeError, match=f"{EVENTS}: 1 row\\(s\\) inserted; the lakehouse takes new rows"):
            with working_copy(platform.warehouse, [EVENTS]) as con:
                con.execute(f"INSERT INTO {EVENTS} SELECT * FROM {EVENTS} LIMIT 1")
    after = _lake_bytes(lake)
    rewritten = {n for n in before if after.get(n) != before[n]}
    assert changed > 0 and rewritten and all(n.startswith("raw_events/usage_events/") for n in rewritten)
    with duckdb.connect(str(platform.warehouse), read_only=True) as con:
        assert con.execute(f"SELECT count(*) FROM {EVENTS} WHERE received_date = ? AND ip IS NOT NULL",
                           [day]).fetchone() == (0,)
        assert con.execute(f"SELECT count(*) FILTER (ip IS NULL), count(*) FROM {EVENTS} WHERE received_date <> ?",
                           [day]).fetchone() == others
        holding = {str(Path(f).relative_to(lake)) for (f,) in con.execute(
            f"SELECT DISTINCT filename FROM {storage.scan_sql(lake / 'raw_events' / 'usage_events', True)} "
            "WHERE received_date = ?", [day]).fetchall()}
    assert rewritten == holding and len(holding) < len(storage.files(lake / "raw_events" / "usage_events"))


def test_an_erasure_whose_files_cannot_be_written_stays_open_and_the_rerun_finishes_it(
        platform: Platform, lakehouse: None, monkeypatch: pytest.MonkeyPatch) -> None:
    platform.generate()
    assert all(_run(platform, day).success for day in DAYS)
    counts = Counter((r.get("workspace_id"), r.get("user_id")) for r in landed_lines(platform.landing)
                     if isinstance(r.get("user_id"), str))
    (ws, user_id), _ = counts.most_common(1)[0]
    with platform.keyring() as cipher:
        bidx = cipher.blind_index(ws, [user_id], kind="user.unique_id").to_pylist()[0]
    held = f"SELECT count(*) FROM {EVENTS} WHERE workspace_id = ? AND user_id_bidx = ?"
    (before,) = platform.query(held, [ws, bidx])[0]
    defs, instance = _defs(platform, False), DagsterInstance.ephemeral()
    inbox = _privacy(platform).inbox()
    erasure = inbox.submit(Request("erasure", ws, "user_id", user_id, requested_by="dpo@gtgcrm.test"))

    def disk_full(*args, **kwargs):  # the lake's storage refuses the rewritten file
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as patched:  # the lakehouse fixture's own patch stays
        patched.setattr("pipelines.lakehouse.working_copy.replace_file", disk_full)
        failed = defs.resolve_job_def("data_subject_requests_job").execute_in_process(instance=instance,
                                                                                    raise_on_error=False)
    assert not failed.success and "No space left on device" in next(
        e for e in failed.all_events if e.event_type_value == "STEP_FAILURE").step_failure_data.error.cause.message
    assert inbox.get(erasure)["status"] == "received" and platform.query(held, [ws, bidx]) == [(before,)]
    assert before > 0

    done = defs.resolve_job_def("data_subject_requests_job").execute_in_process(instance=instance)
    assert done.success and inbox.get(erasure)["status"] == "completed"
    assert platform.query(held, [ws, bidx]) == [(0,)]
