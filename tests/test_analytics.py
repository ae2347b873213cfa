"""The SQL models on hand-made events with known answers: sessions, active users, incremental builds, the
tests as asset checks, failures at load, and the snapshot analysts read."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import uuid
from pathlib import Path

import duckdb
import pytest
from dagster import DagsterInstance, Definitions

from assets.analytics import ANALYTICS_ASSETS, MODELS, PERSONAL_COLUMNS, analytics_job
from assets.sql_models import ModelError, load_models, readable_personal_data, check_name
from pipelines.catalog import DECLARED_TABLES
from pipelines.warehouse import publish_snapshot
from resources.warehouse import WarehouseResource
from tests.conftest import Platform

CHROME = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
          "Chrome/121.0.6174.91 Safari/537.36")
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
DAY1, DAY2 = dt.date(2026, 11, 23), dt.date(2026, 11, 24)


def _event(at: dt.datetime, kind: str = "page_view", page: str = "/dashboard", *, user: str | None = None,
           cookie: str | None = None, ua: str = CHROME, analytics: bool = True, element: str | None = None,
           ws: str = "ws_a") -> dict:
    event = {"event_id": str(uuid.uuid4()), "workspace_id": ws, "event_type": kind,
             "occurred_at": at.strftime("%Y-%m-%dT%H:%M:%S.000Z"), "user_id": user, "anonymous_id": cookie,
             "ip": "203.0.113.9", "user_agent": ua, "url": f"https://app.gtgcrm.com{page}",
             "consent": {"analytics": analytics, "ads": False}}
    if element:
        event["properties"] = {"element": element}
    return event


def _at(day: dt.date, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour, minute), dt.timezone.utc)


def _day1() -> list[dict]:
    t = lambda h, m=0: _at(DAY1, h, m)  # noqa: E731
    events = [
        # u1: three page views ten minutes apart, then one 40 minutes later: two sessions (1200 s and 0 s).
        _event(t(10, 0), page="/p1", user="u1", cookie="c1"),
        _event(t(10, 10), page="/p2", user="u1", cookie="c1"),
        _event(t(10, 20), page="/p3", user="u1", cookie="c1"),
        _event(t(11, 0), page="/p4", user="u1", cookie="c1"),
        # an anonymous visitor: a page view and a click five minutes later.
        _event(t(9, 0), page="/deals", cookie="c2"),
        _event(t(9, 5), "click", page="/deals", cookie="c2", element="button#save"),
        # no analytics consent: counted as a page view, never as a visitor or a session.
        _event(t(12, 0), page="/p1", cookie="c3", analytics=False),
        # a crawler.
        _event(t(13, 0), page="/p1", cookie="bot1", ua=GOOGLEBOT),
        # another workspace's user.
        _event(t(14, 0), page="/inbox", user="u9", cookie="c9", ws="ws_b"),
    ]
    # u4: activity every 20 minutes for 25 hours: one run cut at 24 hours into two sessions.
    events += [_event(t(0, 0) + dt.timedelta(minutes=20 * i), page="/pipeline", user="u4", cookie="c4")
               for i in range(76)]
    return events


def _land(platform: Platform, day: dt.date, events: list[dict]) -> None:
    folder = platform.landing / f"dt={day.isoformat()}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"events-{len(list(folder.iterdir())):05d}.ndjson").write_text(
        "".join(json.dumps(e) + "\n" for e in events))
    platform.register_workspaces(*{e["workspace_id"] for e in events})


def _defs(platform: Platform) -> Definitions:
    return Definitions(assets=ANALYTICS_ASSETS, jobs=[analytics_job], resources={
        "warehouse": WarehouseResource(path=str(platform.warehouse), dlt_dir=str(platform.dlt_dir),
                                       work_dir=str(platform.work_dir))})


def _build(platform: Platform, full_refresh: bool = False):
    defs = _defs(platform)
    job = defs.resolve_job_def("analytics_job")
    config = {"ops": {n: {"config": {"full_refresh": full_refresh}} for n in job.graph.node_names()
                      if n != "analytics__snapshot"}}
    result = job.execute_in_process(instance=DagsterInstance.ephemeral(), run_config=config)
    assert result.success
    return result


def _bidx(platform: Platform, ws: str, value: str) -> bytes:
    """A visitor's key: the blind index of their user id ("u..." here), else of their cookie id."""
    kind = "user.unique_id" if value.startswith("u") else "user.device.cookie_id"
    with platform.keyring() as cipher:
        return cipher.blind_index(ws, [value], kind=kind).to_pylist()[0]


@pytest.fixture
def built(platform: Platform) -> Platform:
    _land(platform, DAY1, _day1())
    platform.ingest()
    platform.build_result = _build(platform)
    return platform


SESSION_COLUMNS = "session_date, started_at, duration_s, events, page_views, clicks, entry_page, exit_page, is_bounce, is_bot"


def _sessions(platform: Platform, ws: str, visitor: str) -> list[tuple]:
    return platform.query(f"SELECT {SESSION_COLUMNS} FROM analytics.sessions WHERE workspace_id = ? AND visitor_key = ? "
                          "ORDER BY started_at", [ws, _bidx(platform, ws, visitor)])


def test_sessions_have_the_known_boundaries_durations_and_pages(built: Platform) -> None:
    t = lambda h, m=0: _at(DAY1, h, m)  # noqa: E731
    assert _sessions(built, "ws_a", "u1") == [
        (DAY1, t(10), 1200.0, 3, 3, 0, "/p1", "/p3", False, False),
        (DAY1, t(11), 0.0, 1, 1, 0, "/p4", "/p4", True, False),
    ]
    assert _sessions(built, "ws_a", "c2") == [(DAY1, t(9), 300.0, 2, 1, 1, "/deals", "/deals", False, False)]
    assert _sessions(built, "ws_a", "u4") == [
        (DAY1, t(0), 1420 * 60.0, 72, 72, 0, "/pipeline", "/pipeline", False, False),
        (DAY2, _at(DAY2, 0), 3600.0, 4, 4, 0, "/pipeline", "/pipeline", False, False),
    ]
    assert _sessions(built, "ws_a", "bot1") == [(DAY1, t(13), 0.0, 1, 1, 0, "/p1", "/p1", True, True)]
    # Every consenting visitor is sessionised; the one without consent is not.
    assert built.query("SELECT count(*) FROM analytics.sessions")[0][0] == 7


def test_active_users_page_and_feature_usage(built: Platform) -> None:
    active = dict(((g, d), (u, v, w)) for g, d, u, v, w in built.query("SELECT * FROM analytics.active_users"))
    # Day 1: users u1, u4 (ws_a), u9 (ws_b); visitors add c2 and leave out the bot and the refusing visitor.
    assert active[("day", DAY1)] == (3, 4, 2)
    assert active[("day", DAY2)] == (1, 1, 1)  # u4's activity past midnight
    assert active[("week", dt.date(2026, 11, 23))] == (3, 4, 2)
    assert active[("month", dt.date(2026, 11, 1))] == (3, 4, 2)
    assert len(active) == 4
    assert built.query("SELECT page_views, visitors FROM analytics.page_usage WHERE event_date = ? AND page_path = '/p1'",
                       [DAY1]) == [(2, 1)]  # u1 and the refusing visitor; the bot left out
    assert built.query("SELECT feature, events, visitors FROM analytics.feature_usage") == [("click: button#save", 1, 1)]
    assert built.query("SELECT bucket, sessions FROM analytics.session_durations WHERE session_date = ? "
                       "ORDER BY bucket_order", [DAY1]) == [("0-10s", 2), ("3-10m", 1), ("10-30m", 1), ("1h+", 1)]
    assert built.query("SELECT sum(bot_events), sum(events) FROM analytics.device_breakdown") == [(1, 85)]


def test_every_model_test_runs_as_a_passing_check(built: Platform) -> None:
    checks = {(e.asset_key.to_user_string(), e.check_name): e.passed
              for e in built.build_result.get_asset_check_evaluations()}
    expected = {(m.table.replace(".", "/"), name) for m in MODELS.values()
                for name in [*map(check_name, m.tests), *(["no_readable_personal_data"] if m.schema == "analytics" else [])]}
    assert len(expected) == 92
    assert set(checks) == expected and all(checks.values())
    comments = built.query("SELECT comment FROM duckdb_columns() WHERE schema_name = 'analytics' "
                           "AND table_name = 'sessions' AND column_name = 'duration_s'")
    assert comments == [("Seconds from the first to the last event.",)]


def _rebuild(platform: Platform) -> dict[str, dict]:
    """Build incrementally; returns each model's metadata (mode, since, rows, ...)."""
    return {e.asset_key.path[-1]: {k: v.value for k, v in e.materialization.metadata.items()}
            for e in _build(platform).get_asset_materialization_events() if "mode" in e.materialization.metadata}


def _load_and_build(platform: Platform, day: dt.date, events: list[dict]) -> dict[str, dict]:
    """Land `events` on `day`, load them and build incrementally."""
    _land(platform, day, events)
    platform.ingest()
    return _rebuild(platform)


def _latest_load(platform: Platform) -> str:
    return platform.query("SELECT max(load_id) FROM raw_events._dlt_loads")[0][0]


def _mark_sessions(platform: Platform, ws: str, visitor: str) -> None:
    """Set a visitor's stored sessions' durations to -1: a rebuild that recomputes them puts them right."""
    with duckdb.connect(str(platform.warehouse)) as con:
        con.execute("UPDATE analytics.sessions SET duration_s = -1 WHERE workspace_id = ? AND visitor_key = ?",
                    [ws, _bidx(platform, ws, visitor)])


def _every_mart(platform: Platform) -> dict[str, list[tuple]]:
    return {m.table: platform.query(f"SELECT * FROM {m.table} ORDER BY ALL")
            for m in MODELS.values() if m.schema == "analytics"}


def _assert_equals_a_full_rebuild(platform: Platform) -> None:
    incremental = _every_mart(platform)
    _build(platform, full_refresh=True)
    assert _every_mart(platform) == incremental


def test_incremental_build_adds_a_day_and_equals_a_full_rebuild(built: Platform) -> None:
    later = [_event(_at(DAY2, 10, m), page="/p9", user="u1", cookie="c1") for m in (0, 5)]
    done = _load_and_build(built, DAY2, later)
    assert [done[m]["mode"] for m in ("sessions", "active_users", "workspaces", "stg_events")] == [
        "incremental", "incremental", "refilled", "unchanged"]
    assert {name: d["rows"] for name, d in done.items()} == {  # counted as the build went, not read back
        m.name: built.query(f"SELECT count(*) FROM {m.table}")[0][0] for m in MODELS.values()}
    incremental = built.query(f"SELECT {SESSION_COLUMNS}, session_id FROM analytics.sessions ORDER BY session_id")
    _assert_equals_a_full_rebuild(built)  # every mart, not only sessions
    assert built.query(f"SELECT {SESSION_COLUMNS}, session_id FROM analytics.sessions ORDER BY session_id") == incremental
    assert len(incremental) == 8 and _sessions(built, "ws_a", "u1")[-1][:3] == (DAY2, _at(DAY2, 10), 300.0)


def test_events_at_the_same_instant_belong_to_one_session(built: Platform) -> None:
    t = lambda h, m: _at(DAY2, h, m)  # noqa: E731
    # 40 minutes after c5's first page view, a session_start and a page view at the same instant, then a click.
    _load_and_build(built, DAY2, [_event(t(15, 0), cookie="c5"), _event(t(15, 40), "session_start", cookie="c5"),
                                  _event(t(15, 40), page="/p2", cookie="c5"),
                                  _event(t(15, 45), "click", page="/p2", cookie="c5", element="a#next")])
    assert _sessions(built, "ws_a", "c5") == [
        (DAY2, t(15, 0), 0.0, 1, 1, 0, "/dashboard", "/dashboard", True, False),
        (DAY2, t(15, 40), 300.0, 3, 1, 1, "/p2", "/p2", False, False)]
    _assert_equals_a_full_rebuild(built)


def test_sessions_recompute_only_the_visitors_of_later_loads(built: Platform) -> None:
    _mark_sessions(built, "ws_a", "c2")  # c2 (DAY1) gets nothing new: their sessions are not recomputed
    _mark_sessions(built, "ws_a", "u4")  # u4 has a late event on DAY2, the latest day built
    seen = _latest_load(built)
    done = _load_and_build(built, DAY2, [_event(_at(DAY2, 1, 10), page="/pipeline", user="u4", cookie="c4")])
    assert (done["sessions"]["mode"], done["sessions"]["loaded_after"]) == ("incremental", seen)
    assert [s[:4] for s in _sessions(built, "ws_a", "c2")] == [(DAY1, _at(DAY1, 9), -1.0, 2)]
    assert [s[:4] for s in _sessions(built, "ws_a", "u4")] == [  # from the day before: both of its sessions
        (DAY1, _at(DAY1, 0), 1420 * 60.0, 72), (DAY2, _at(DAY2, 0), 4200.0, 5)]


def test_sessions_recompute_no_one_without_a_new_load_and_everyone_once_the_record_is_lost(built: Platform) -> None:
    _mark_sessions(built, "ws_a", "u4")
    done = _rebuild(built)
    assert (done["sessions"]["loaded_after"], done["sessions"]["rows"]) == (_latest_load(built), 7)
    assert [s[2] for s in _sessions(built, "ws_a", "u4")] == [-1.0, -1.0]
    with duckdb.connect(str(built.warehouse)) as con:
        con.execute("DROP TABLE staging._model_loads")
    done = _rebuild(built)
    assert done["sessions"]["loaded_after"] == ""  # every visitor of the window is new again
    assert [s[2] for s in _sessions(built, "ws_a", "u4")] == [1420 * 60.0, 3600.0]


def test_active_users_recompute_the_latest_periods_and_keep_the_others(built: Platform) -> None:
    nov30, dec1, dec8 = dt.date(2026, 11, 30), dt.date(2026, 12, 1), dt.date(2026, 12, 8)  # Monday, Tuesdays
    _load_and_build(built, dec1, [_event(_at(nov30, 10), user="u1", cookie="c1"), _event(_at(dec1, 10), cookie="c2")])
    done = _load_and_build(built, dec8, [_event(_at(dec8, 10), user="u9", cookie="c9", ws="ws_b")])
    # From the latest day built (1 December): its week began on 30 November, whose day row is kept as it was.
    assert (done["active_users"]["mode"], done["active_users"]["since"]) == ("incremental", "2026-12-01")
    assert built.query("SELECT * FROM analytics.active_users ORDER BY grain, period_start") == [
        ("day", DAY1, 3, 4, 2), ("day", DAY2, 1, 1, 1), ("day", nov30, 1, 1, 1), ("day", dec1, 0, 1, 1),
        ("day", dec8, 1, 1, 1),
        ("month", dt.date(2026, 11, 1), 3, 4, 2), ("month", dec1, 1, 2, 2),
        ("week", DAY1, 3, 4, 2), ("week", nov30, 1, 2, 1), ("week", dt.date(2026, 12, 7), 1, 1, 1)]
    _assert_equals_a_full_rebuild(built)


def test_a_session_lengthened_past_midnight_by_a_later_load_reaches_its_duration(built: Platform) -> None:
    day3 = DAY2 + dt.timedelta(days=1)
    _load_and_build(built, day3, [_event(_at(DAY2, 23, 50), page="/deals", cookie="c2"),
                                  _event(_at(day3, 0, 1), user="u1", cookie="c1")])  # day3 is now the latest day
    # c2 goes on past midnight: their session of the day before the latest lasts 20 minutes now, not 0 s.
    done = _load_and_build(built, day3, [_event(_at(day3, 0, 10), page="/deals", cookie="c2")])
    assert done["session_durations"]["since"] == DAY2.isoformat()
    assert _sessions(built, "ws_a", "c2")[-1] == (DAY2, _at(DAY2, 23, 50), 1200.0, 2, 2, 0, "/deals", "/deals",
                                                   False, False)
    assert built.query("SELECT bucket, sessions FROM analytics.session_durations WHERE session_date = ? "
                       "ORDER BY bucket_order", [DAY2]) == [("10-30m", 1), ("1h+", 1)]
    _assert_equals_a_full_rebuild(built)


def test_a_late_event_joining_two_sessions_across_midnight_leaves_one(built: Platform) -> None:
    day3 = DAY2 + dt.timedelta(days=1)
    _load_and_build(built, day3, [_event(_at(DAY2, 23, 45), page="/deals", cookie="c2"),
                                  _event(_at(day3, 0, 20), page="/deals", cookie="c2")])  # 35 minutes apart
    assert [s[:3] for s in _sessions(built, "ws_a", "c2")] == [
        (DAY1, _at(DAY1, 9), 300.0), (DAY2, _at(DAY2, 23, 45), 0.0), (day3, _at(day3, 0, 20), 0.0)]
    _load_and_build(built, day3, [_event(_at(day3, 0, 5), page="/deals", cookie="c2")])  # late, between them
    assert [s[:4] for s in _sessions(built, "ws_a", "c2")] == [
        (DAY1, _at(DAY1, 9), 300.0, 2), (DAY2, _at(DAY2, 23, 45), 2100.0, 3)]
    _assert_equals_a_full_rebuild(built)


def _count_in_another_process(path: Path, with_comment: bool = False) -> subprocess.CompletedProcess:
    comment = ", (SELECT comment FROM duckdb_tables() WHERE table_name = 'sessions')" if with_comment else ""
    query = f"SELECT count(*){comment} FROM analytics.sessions"
    code = ("import duckdb, sys; con = duckdb.connect(sys.argv[1], read_only=True); row = con.execute(sys.argv[2])"
            ".fetchone(); print(row if len(row) > 1 else row[0])")
    return subprocess.run([sys.executable, "-c", code, str(path), query], capture_output=True, text=True)


def test_snapshot_is_readable_while_the_warehouse_is_written(built: Platform) -> None:
    snapshot = built.root / "analytics_snapshot.duckdb"
    analyst = duckdb.connect(str(snapshot), read_only=True)
    before = analyst.execute("SELECT count(*) FROM analytics.sessions").fetchone()[0]
    assert before == 7
    with duckdb.connect(str(built.warehouse)) as writer:  # a pipeline holds the warehouse
        writer.execute("DELETE FROM analytics.sessions WHERE duration_s = 0")
        # Another process cannot even open the warehouse now; the snapshot it can.
        assert _count_in_another_process(snapshot).stdout.strip() == "7"
        assert "lock" in _count_in_another_process(built.warehouse).stderr.lower()
    with duckdb.connect(str(built.warehouse)) as con:  # while the analyst's connection is still open
        published = publish_snapshot(con, snapshot)
    assert published["sessions"] == 4
    assert analyst.execute("SELECT count(*) FROM analytics.sessions").fetchone()[0] == 7  # their old file
    # A new analyst (another process: DuckDB shares one open file per process) sees the new snapshot.
    assert _count_in_another_process(snapshot, with_comment=True).stdout.strip() == repr(
        (4, MODELS["analytics.sessions"].description))
    assert sorted(p.name for p in built.root.iterdir() if "snapshot" in p.name) == ["analytics_snapshot.duckdb"]
    analyst.close()


def _models_dir(tmp_path: Path, sql: str) -> Path:
    (tmp_path / "staging").mkdir(parents=True)
    (tmp_path / "marts").mkdir()
    (tmp_path / "marts" / "broken.sql").write_text(sql)
    return tmp_path


def test_a_model_with_an_unknown_table_or_bad_sql_fails_at_load_naming_the_file(tmp_path: Path) -> None:
    header = "/*\ndescription: x\nmaterialized: table\ncolumns:\n  n: n\n*/\n"
    unknown = _models_dir(tmp_path / "a", header + "SELECT count(*) AS n\nFROM staging.stg_eventz\n")
    with pytest.raises(ModelError, match=r"marts/broken\.sql:8: unknown table 'staging\.stg_eventz'"):
        load_models(set(DECLARED_TABLES), unknown)
    syntax = _models_dir(tmp_path / "b", header + "SELECT count(* AS n FROM raw_events.usage_events\n")
    with pytest.raises(ModelError, match=r"marts/broken\.sql:7: SQL syntax error"):
        load_models(set(DECLARED_TABLES), syntax)
    bad_header = _models_dir(tmp_path / "c", "/*\nmaterialised: table\n*/\nSELECT 1 AS n\n")
    with pytest.raises(ModelError, match=r"broken\.sql: unknown header key\(s\) \['materialised'\]"):
        load_models(set(DECLARED_TABLES), bad_header)
    partitioned = header.replace("columns:", "partition_by: [n]\ncolumns:")
    not_incremental = _models_dir(tmp_path / "d", partitioned + "SELECT 1 AS n\n")
    with pytest.raises(ModelError, match=r"broken\.sql: only incremental models are rebuilt by partition"):
        load_models(set(DECLARED_TABLES), not_incremental)


def test_a_view_is_recreated_only_when_its_sql_changed(built: Platform, tmp_path: Path) -> None:
    from assets.sql_models import build

    def view(folder: str, sql: str):
        header = "/*\ndescription: x\nmaterialized: view\ncolumns:\n  n: n\n*/\n"
        return load_models(set(DECLARED_TABLES), _models_dir(tmp_path / folder, header + sql))["analytics.broken"]

    first = view("a", "SELECT count(*) AS n FROM raw_events.usage_events")
    reformatted = view("b", "select COUNT(*)  as n\nfrom raw_events.usage_events  -- the same query")
    changed = view("c", "SELECT count(*) + 1 AS n FROM raw_events.usage_events")
    with duckdb.connect(str(built.warehouse)) as con:
        assert [build(con, m, sources=DECLARED_TABLES)["mode"] for m in (first, reformatted, changed, changed)] == [
            "full", "unchanged", "full", "unchanged"]
        assert con.execute("SELECT n FROM analytics.broken").fetchall() == [(85 + 1,)]  # the changed SQL


def test_the_personal_data_check_catches_a_mart_that_leaks(built: Platform, tmp_path: Path) -> None:
    # `mobile` is no declared personal column's name (`phone` is: the app's and the uploads'), so its values are
    # what gives it away
    leaky = _models_dir(tmp_path, "/*\ndescription: leaks\nmaterialized: table\ncolumns:\n  ip: x\n  contact: x\n"
                        "  mobile: x\n*/\nSELECT ip, 'ann@example.com' AS contact, '+44 20 7946 0958' AS mobile "
                        "FROM raw_events.usage_events LIMIT 3\n")
    model = load_models(set(DECLARED_TABLES), leaky)["analytics.broken"]
    with duckdb.connect(str(built.warehouse)) as con:
        from assets.sql_models import build

        build(con, model)
        assert readable_personal_data(con, model, PERSONAL_COLUMNS) == {
            "ip: declared personal column": 1, "contact: email": 3, "mobile: phone": 3}


def test_erasure_reaches_the_marts_and_the_snapshot(built: Platform) -> None:
    from assets.privacy import REQUEST_CHECKS, data_subject_requests, requests_job
    from pipelines.privacy.requests import Request
    from resources.keyring import KeyringResource
    from resources.privacy import PrivacyResource

    key = _bidx(built, "ws_a", "u1")
    counts = "SELECT (SELECT count(*) FROM analytics.sessions WHERE visitor_key = $k), " \
             "(SELECT count(*) FROM analytics.visitor_days WHERE visitor_key = $k OR user_key = $k)"
    assert built.query(counts.replace("$k", "?"), [key, key, key]) == [(2, 1)]
    privacy = PrivacyResource(inbox_path=str(built.root / "privacy" / "requests.sqlite"),
                              audit_path=str(built.root / "privacy" / "audit.jsonl"),
                              exports_dir=str(built.root / "exports"), landing_urls={"usage_events": str(built.landing)})
    privacy.inbox().submit(Request("erasure", "ws_a", "user_id", "u1"))
    defs = Definitions(assets=[data_subject_requests], asset_checks=REQUEST_CHECKS, jobs=[requests_job], resources={
        "warehouse": WarehouseResource(path=str(built.warehouse), dlt_dir=str(built.dlt_dir), work_dir=str(built.work_dir)),
        "keyring": KeyringResource(master_key_file=str(built.master_key_file), keyring_path=str(built.keyring_path)),
        "privacy": privacy})
    result = defs.resolve_job_def("data_subject_requests_job").execute_in_process(instance=DagsterInstance.ephemeral())
    rows = result.get_asset_materialization_events()[0].materialization.metadata["rows_by_table"].value
    assert rows == {"raw_events.usage_events": 4, "analytics.sessions": 2, "analytics.visitor_days": 1}
    assert built.query(counts.replace("$k", "?"), [key, key, key]) == [(0, 0)]
    snapshot_sessions = _count_in_another_process(built.root / "analytics_snapshot.duckdb").stdout.strip()
    assert snapshot_sessions == "5"  # 7 before, u1's two gone


def test_a_model_or_header_test_that_is_more_than_one_select_fails_at_load(tmp_path: Path) -> None:
    header = "/*\ndescription: x\nmaterialized: table\ncolumns:\n  n: n\n{tests}*/\n"
    cases = {
        "key": (header.format(tests="") + "SELECT content AS n FROM read_text('data/keys/master.key')\n",
                r"broken\.sql: the model reads the table function 'read_text'"),
        "scalar": (header.format(tests="") + "SELECT (SELECT content FROM read_blob('data/keys/master.key')) AS n "
                   "FROM raw_events.usage_events\n", r"broken\.sql: the model reads the table function 'read_blob'"),
        "file": (header.format(tests="") + "SELECT 1 AS n FROM 'data/keys/master.key'\n",
                 r"broken\.sql: tables must be schema-qualified"),
        "env": (header.format(tests="") + "SELECT getenv('GTG_MASTER_KEY') AS n\n",
                r"broken\.sql: the model calls 'getenv', which reads outside the warehouse"),
        "two": (header.format(tests="") + "SELECT 1 AS n; CREATE TABLE analytics.x AS SELECT 1\n",
                r"broken\.sql: the model holds exactly one SELECT, not SELECT, CREATE"),
        "copy": (header.format(tests="") + "COPY raw_events.usage_events TO 'out.csv'\n",
                 r"broken\.sql: the model holds exactly one SELECT, not COPY"),
        "attach": (header.format(tests="") + "SELECT n FROM other.analytics.t\n",
                   r"broken\.sql: the model reads 'other\.analytics\.t' from another database"),
        "test": (header.format(tests="tests:\n  - not_null: ['n IS NULL; CREATE TABLE analytics.x AS SELECT 1; --']\n")
                 + "SELECT 1 AS n\n", r"broken\.sql: the not_null test names \['n IS NULL; CREATE TABLE"),
        "test_values": (header.format(tests="tests:\n  - relationships: {column: n, to: 'raw_events.t; DROP TABLE x', "
                                      "field: n}\n") + "SELECT 1 AS n\n",
                        r"broken\.sql: a relationships test names a schema\.table"),
    }
    for name, (sql, reason) in cases.items():
        with pytest.raises(ModelError, match=reason):
            load_models(set(DECLARED_TABLES), _models_dir(tmp_path / name, sql))


def test_models_build_with_external_file_access_disabled(built: Platform, tmp_path: Path) -> None:
    from dataclasses import replace

    from assets.sql_models import build

    header = "/*\ndescription: x\nmaterialized: table\ncolumns:\n  n: n\n*/\n"
    model = load_models(set(DECLARED_TABLES), _models_dir(tmp_path, header + "SELECT 1 AS n\n"))["analytics.broken"]
    (built.root / "secret.txt").write_text("the master key")
    # A model that got past the checks (written here directly) still cannot read a file: the build refuses.
    reading = replace(model, sql=f"SELECT content AS n FROM read_text('{built.root / 'secret.txt'}')")
    with duckdb.connect(str(built.warehouse)) as con:
        with pytest.raises(duckdb.PermissionException, match="disabled by configuration"):
            build(con, reading)
        assert con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'broken'").fetchall() == [(0,)]
