"""The analysts' snapshot never lags the privacy engine: an erasure or a retention run killed (`kill -9`) while
it republishes the snapshot is finished by the next run, and the erasure is not completed before. The real
CLI runs as a subprocess on the test's data folder; the test kills it by PID once the new snapshot file
exists and before it is swapped in."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import duckdb

from pipelines.privacy.requests import Inbox, Request
from tests.conftest import Platform
from tests.kill import kill_when
from tests.test_analytics import _at, _build, _day1, _event, _land, DAY1

PROJECT = Path(__file__).resolve().parent.parent
TIMEOUT_S = 180
_OVERRIDES = ("GTG_WAREHOUSE_PATH", "GTG_EVENTS_LANDING_URL", "GTG_KEYRING_PATH", "GTG_MASTER_KEY_FILE",
              "GTG_MASTER_KEY", "GTG_SNAPSHOT_PATH", "GTG_EXPORTS_DIR", "GTG_CONNECTIONS_PATH", "DAGSTER_HOME")


def _cli(platform: Platform, home: str, *args: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k not in _OVERRIDES}
    env.update(GTG_DATA_DIR=str(platform.root), DAGSTER_HOME=str(platform.root.parent / home), GTG_ENV="sandbox")
    (platform.root.parent / home).mkdir(exist_ok=True)
    return subprocess.Popen([sys.executable, "-m", "cli", *args], cwd=PROJECT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def _kill_while_publishing(platform: Platform, process: subprocess.Popen) -> None:
    """kill -9 the process as soon as its new snapshot file exists (it is being filled, not yet swapped in)."""
    kill_when(process, lambda: bool(list(platform.root.glob(".analytics_snapshot.duckdb.*.tmp"))), TIMEOUT_S)


def _finish(process: subprocess.Popen) -> None:
    output = process.communicate(timeout=TIMEOUT_S)[0].decode()
    assert process.returncode == 0, output[-3000:]


def _snapshot(platform: Platform, sql: str, params: list | None = None) -> list[tuple]:
    with duckdb.connect(str(platform.root / "analytics_snapshot.duckdb"), read_only=True) as con:
        return con.execute(sql, params or []).fetchall()


def test_an_erasure_killed_while_republishing_stays_open_and_its_rerun_clears_the_snapshot(platform: Platform) -> None:
    _land(platform, DAY1, _day1())
    platform.ingest()
    _build(platform)
    with platform.keyring() as cipher:
        key = cipher.blind_index("ws_a", ["u1"], kind="user.unique_id").to_pylist()[0]
    held = "SELECT (SELECT count(*) FROM analytics.sessions WHERE visitor_key = ?), " \
           "(SELECT count(*) FROM analytics.sessions), (SELECT count(*) FROM analytics.visitor_days WHERE user_key = ?)"
    assert _snapshot(platform, held, [key, key]) == [(2, 7, 1)]
    inbox = Inbox(platform.root / "privacy" / "requests.sqlite")
    request_id = inbox.submit(Request("erasure", "ws_a", "user_id", "u1"))

    _kill_while_publishing(platform, _cli(platform, "home1", "privacy", "process"))
    # Killed after the rows were deleted, before the new snapshot replaced the old one: the request is still
    # open, and the analysts' copy still holds the person.
    assert platform.query(held, [key, key]) == [(0, 5, 0)]
    assert _snapshot(platform, held, [key, key]) == [(2, 7, 1)]
    assert [r["status"] for r in inbox.all() if r["request_id"] == request_id] == ["received"]

    _finish(_cli(platform, "home2", "privacy", "process"))
    assert _snapshot(platform, held, [key, key]) == [(0, 5, 0)]
    assert [r["status"] for r in inbox.all() if r["request_id"] == request_id] == ["completed"]
    assert sorted(p.name for p in platform.root.iterdir() if "snapshot" in p.name) == ["analytics_snapshot.duckdb"]


def test_retention_killed_while_republishing_is_finished_by_the_next_run(platform: Platform) -> None:
    old = dt.datetime.now(dt.timezone.utc).date() - dt.timedelta(days=400)  # past the 395 days of analytics
    today = dt.datetime.now(dt.timezone.utc).date()
    _land(platform, today, [_event(_at(old, 10, m), page="/p1", cookie="c_old") for m in (0, 10, 20)]
          + [_event(_at(today, 0, 1), page="/p2", cookie="c_new")])
    platform.ingest()
    _build(platform)
    identified = "SELECT count(visitor_key), count(*) FROM analytics.sessions WHERE session_date = ?"
    assert _snapshot(platform, identified, [old]) == [(1, 1)]

    _kill_while_publishing(platform, _cli(platform, "home1", "retention"))
    assert platform.query(identified, [old]) == [(0, 1)]  # anonymised in the warehouse: the count stays
    assert _snapshot(platform, identified, [old]) == [(1, 1)]  # not yet in the analysts' copy

    _finish(_cli(platform, "home2", "retention"))
    assert _snapshot(platform, identified, [old]) == [(0, 1)]
    assert _snapshot(platform, "SELECT count(visitor_key) FROM analytics.visitor_days WHERE event_date = ?", [old]) \
        == [(0,)]
    assert _snapshot(platform, identified, [today]) == [(1, 1)]  # inside its window: untouched
