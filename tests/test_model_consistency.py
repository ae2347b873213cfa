"""Incremental SQL models equal a full build of the same data: after days of late-arriving events, and after
an erasure, a correction and an opt-out. Real generated landing files, real loads, the real `analytics_job`."""

from __future__ import annotations

import datetime as dt
import shutil
from collections import Counter
from pathlib import Path

import pytest
from dagster import DagsterInstance, Definitions

from assets.analytics import MODELS
from assets.privacy import data_subject_requests, requests_job
from pipelines.privacy.requests import Request
from pipelines.sandbox.events import generate_events
from resources.keyring import KeyringResource
from resources.privacy import PrivacyResource
from resources.warehouse import WarehouseResource
from tests.conftest import Platform, landed_lines
from tests.test_analytics import _build

END = dt.date(2026, 11, 24)
DAYS = 6
STORED = [m for m in MODELS.values() if m.materialized != "view"]


def _every_model(platform: Platform) -> dict[str, list[tuple]]:
    return {m.table: platform.query(f"SELECT * FROM {m.table} ORDER BY ALL") for m in STORED}


def _metadata(result) -> dict[str, dict]:
    return {e.asset_key.path[-1]: {k: v.value for k, v in e.materialization.metadata.items()}
            for e in result.get_asset_materialization_events() if "mode" in e.materialization.metadata}


def _late_events(platform: Platform, arrival: dt.date) -> tuple[int, dt.date]:
    """Events of the latest load that happened two or more days before their arrival day, and the earliest
    day that load brought events of."""
    return platform.query(
        "SELECT count_if(occurred_at < ?::TIMESTAMPTZ), min(CAST(occurred_at AS DATE)) FROM raw_events.usage_events "
        "WHERE _dlt_load_id = (SELECT max(load_id) FROM raw_events._dlt_loads)",
        [dt.datetime.combine(arrival - dt.timedelta(days=1), dt.time(), dt.timezone.utc)])[0]


@pytest.fixture
def daily(platform: Platform, tmp_path: Path) -> Platform:
    """Six days of tracker files (about 3 % of sessions arriving one to three days late), landed, loaded and
    built one arrival day at a time, as the hourly jobs do."""
    incoming = tmp_path / "incoming"
    generate_events(str(incoming), events=9000, seed=23, days=DAYS, end_date=END, file_events=100_000,
                    bad_share=0.01, duplicate_share=0.01, workspaces_path=platform.workspaces_path)
    platform.late, platform.builds = {}, []
    for folder in sorted(incoming.iterdir()):
        arrival = dt.date.fromisoformat(folder.name.removeprefix("dt="))
        platform.landing.mkdir(parents=True, exist_ok=True)
        shutil.move(str(folder), platform.landing / folder.name)
        platform.ingest()
        platform.late[arrival] = _late_events(platform, arrival)
        platform.builds.append(_metadata(_build(platform)))
    return platform


def test_late_events_reach_every_incremental_model_as_a_full_build_would(daily: Platform) -> None:
    late = {day: count for day, (count, _) in daily.late.items() if count}
    assert len(late) >= 3 and sum(late.values()) >= 30  # real lateness: two or three days, every day
    # The builds after the first were incremental, each from the earliest day its load brought events of.
    later = daily.builds[1:]
    assert all(b[m]["mode"] == "incremental" for b in later for m in ("visitor_days", "sessions", "page_usage"))
    for (count, earliest), build in zip(list(daily.late.values())[1:], later):
        assert build["visitor_days"]["since"] == build["page_usage"]["since"] == earliest.isoformat()
        assert build["session_durations"]["since"] == (earliest - dt.timedelta(days=1)).isoformat()
    incremental = _every_model(daily)
    assert sum(len(rows) for rows in incremental.values()) > 1000
    _build(daily, full_refresh=True)
    full = _every_model(daily)
    assert sorted(incremental) == sorted(full) and len(full) == len(STORED) == 17
    for table in full:
        assert incremental[table] == full[table], table


def _process(platform: Platform, *requests: Request) -> dict:
    privacy = PrivacyResource(inbox_path=str(platform.root / "privacy" / "requests.sqlite"),
                              audit_path=str(platform.root / "privacy" / "audit.jsonl"),
                              exports_dir=str(platform.root / "exports"),
                              landing_urls={"usage_events": str(platform.landing)})
    for request in requests:
        privacy.inbox().submit(request)
    defs = Definitions(assets=[data_subject_requests], jobs=[requests_job], resources={
        "warehouse": WarehouseResource(path=str(platform.warehouse), dlt_dir=str(platform.dlt_dir),
                                       work_dir=str(platform.work_dir)),
        "keyring": KeyringResource(master_key_file=str(platform.master_key_file),
                                   keyring_path=str(platform.keyring_path)),
        "privacy": privacy})
    result = defs.resolve_job_def("data_subject_requests_job").execute_in_process(instance=DagsterInstance.ephemeral())
    assert result.success
    return {e.asset_key.to_user_string(): e.materialization.metadata
            for e in result.get_asset_materialization_events()}


def _active_users(platform: Platform) -> list[str]:
    """Signed-in users of the landed files by (workspace, user id), most active days first."""
    days: Counter = Counter()
    for line in {(e["workspace_id"], e["user_id"], e["occurred_at"][:10]) for e in landed_lines(platform.landing)
                 if all(isinstance(e.get(k), str) for k in ("workspace_id", "user_id", "occurred_at"))
                 and isinstance(e.get("consent"), dict) and e["consent"].get("analytics") is True}:
        days[line[:2]] += 1
    return [key for key, _ in days.most_common()]


def test_after_an_erasure_a_correction_and_an_opt_out_every_model_equals_a_full_build(daily: Platform) -> None:
    (ws, erased), (ws2, corrected), (ws3, opted_out) = _active_users(daily)[:3]
    with daily.keyring() as cipher:
        key = cipher.blind_index(ws, [erased], kind="user.unique_id").to_pylist()[0]
    held = "SELECT (SELECT count(*) FROM analytics.visitor_days WHERE user_key = ?), " \
           "(SELECT count(DISTINCT event_date) FROM analytics.visitor_days WHERE user_key = ?)"
    days = daily.query(held, [key, key])[0][1]
    assert days >= 3  # a person active on several days: the aggregates of each of them count them
    active = daily.query("SELECT sum(active_users) FROM analytics.active_users WHERE grain = 'day'")[0][0]
    _process(daily, Request("erasure", ws, "user_id", erased),
             Request("correction", ws2, "user_id", corrected, field="user.unique_id", new_value="usr_corrected_0001"),
             Request("consent", ws3, "user_id", opted_out, purposes={"analytics": False, "ads": False}))
    done = _metadata(_build(daily))
    assert done["visitor_days"]["mode"] == "full" and done["active_users"]["mode"] == "full"
    assert daily.query(held, [key, key]) == [(0, 0)]
    # Each day the erased person was active on counts one user fewer (no other change touches the count).
    assert daily.query("SELECT sum(active_users) FROM analytics.active_users WHERE grain = 'day'")[0][0] == active - days
    with daily.keyring() as cipher:
        new_key = cipher.blind_index(ws2, ["usr_corrected_0001"], kind="user.unique_id").to_pylist()[0]
    assert daily.query("SELECT count(*) FROM analytics.visitor_days WHERE user_key = ?", [new_key])[0][0] > 0
    incremental = _every_model(daily)
    _build(daily, full_refresh=True)
    full = _every_model(daily)
    for table in full:
        assert incremental[table] == full[table], table
    # And the next build, with nothing new, is incremental again and still equal.
    assert _metadata(_build(daily))["visitor_days"]["mode"] == "incremental"
    assert _every_model(daily) == full
