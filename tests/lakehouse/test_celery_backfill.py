"""Runs spread over workers: a 7-day backfill of the events on three Celery workers (Debian's redis-server as
broker, started here) equals the same days run one after another in process."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest
import redis
from dagster import DagsterInstance

from pipelines.warehouse import BACKEND_ENV
from tests.conftest import Platform
from tests.lakehouse.conftest import twin
from tests.lakehouse.test_lakehouse_storage import _rows
from tests.test_ingestion_assets import _run

WORKERS = 3
NICE = ["nice", "-n", "15"]
DAYS = [f"2026-11-{d}" for d in range(18, 25)]
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def broker(tmp_path: Path):
    """A private redis-server listening on a unix socket only (no TCP port to collide on), stopped by its pid."""
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is missing: apt-get install redis-server (.ci/run installs it)")
    socket = tmp_path / "redis.sock"
    server = subprocess.Popen(["redis-server", "--port", "0", "--unixsocket", str(socket), "--unixsocketperm", "700",
                               "--save", "", "--appendonly", "no", "--dir", str(tmp_path)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = redis.Redis(unix_socket_path=str(socket))
    for _ in range(100):
        try:
            client.ping()
            break
        except (redis.ConnectionError, FileNotFoundError):
            time.sleep(0.1)
    yield f"redis+socket://{socket}"
    server.terminate()
    server.wait(10)


def _environment(platform: Platform, broker: str, home: Path) -> dict[str, str]:
    return {**os.environ, "GTG_ENV": "sandbox", "GTG_DATA_DIR": str(platform.root), BACKEND_ENV: "lakehouse",
            "GTG_EXECUTOR": "celery", "GTG_CELERY_BROKER": broker, "DAGSTER_HOME": str(home),
            "RUNTIME__DLTHUB_TELEMETRY": "false", "PYTHONPATH": os.pathsep.join([str(home / "celery"), str(ROOT)])}


@pytest.fixture
def workers(broker: str, tmp_path: Path, generated_days: tuple[Platform, Platform]):
    """Three Celery worker processes (one task at a time each: the solo pool runs it in the worker itself) with
    the platform's environment; their pids, to tell where the steps ran."""
    _, celery_platform = generated_days
    home = tmp_path / "dagster_home"
    (home / "celery").mkdir(parents=True)
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    (home / "celery" / "dagster_celery_config.py").write_text(
        f"broker_url = {broker!r}\nresult_backend = {broker!r}\n")
    env = _environment(celery_platform, broker, home)
    # The instance's SQLite storages are created once here: processes creating them at the same moment race
    # on their migrations ("more than one head").
    with DagsterInstance.from_config(str(home)) as instance:
        instance.get_runs(limit=1)
        instance.get_latest_materialization_events([])
        instance.all_instigator_state()
    # So is the dlt pipeline folder the events asset's definition opens when the definitions load: processes
    # that load them together would otherwise race to create it (dlt wipes a folder it finds without state).
    subprocess.run([sys.executable, "-c", "import definitions"], env=env, cwd=ROOT, check=True, timeout=300)
    started = [subprocess.Popen([*NICE, sys.executable, "-m", "celery", "-A", "dagster_celery.app", "worker",
                                 "-Q", "dagster", "--pool", "solo", "--prefetch-multiplier=1", "-n", f"w{i}@%h",
                                 "--loglevel", "WARNING"], env=env, cwd=ROOT,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for i in range(WORKERS)]
    yield env, {w.pid for w in started}
    for worker in started:
        worker.terminate()
    for worker in started:
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            worker.kill()


@pytest.fixture
def generated_days(platform: Platform, tmp_path: Path) -> tuple[Platform, Platform]:
    """Seven landed days, twice (the serial platform and the Celery one)."""
    stats = platform.generate(days=7, events=3500, file_events=500)
    platform.stats = stats
    return platform, twin(platform, tmp_path / "celery")


def test_a_seven_day_backfill_on_three_celery_workers_equals_the_serial_runs(
        generated_days: tuple[Platform, Platform], workers: tuple[dict[str, str], set[int]], lakehouse: None) -> None:
    serial, spread = generated_days
    environment, worker_pids = workers
    stats = serial.stats
    assert all(_run(serial, day).success for day in DAYS)

    runs = [subprocess.Popen([*NICE, sys.executable, "-m", "tests.lakehouse.celery_backfill", day], env=environment,
                             cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for day in DAYS]
    results = []
    for run in runs:
        out, err = run.communicate(timeout=600)
        assert run.returncode == 0, err[-3000:]
        results.append(json.loads(out.strip().splitlines()[-1]))

    assert [r["day"] for r in results] == DAYS
    assert all(r["success"] and r["executor"] == "celery" and r["checks"] and all(r["checks"]) for r in results)
    # Each day reads and quarantines its own lines. An event that landed on two days is loaded by whichever of
    # them ran first (the other counts a duplicate): serially the earlier day, in parallel either; the totals
    # and the events stored are the same.
    assert {r["day"]: (r["lines_read"], r["lines_quarantined"]) for r in results} == {
        d: (stats.lines_by_day[d], stats.bad_by_day[d]) for d in DAYS}
    assert (sum(r["events_loaded"] for r in results), sum(r["duplicates_dropped"] for r in results)) == (
        stats.valid_events, stats.duplicate_lines)
    # Every step ran in a worker, and the days were spread over more than one.
    step_pids = {pid for r in results for pid in r["step_pids"]}
    assert step_pids <= worker_pids and len(step_pids) > 1
    with duckdb.connect(str(serial.warehouse), read_only=True) as one, \
            duckdb.connect(str(spread.warehouse), read_only=True) as many:
        quarantined = "SELECT reason, count(*) FROM raw_events.usage_events_quarantine GROUP BY 1 ORDER BY 1"
        assert many.execute(quarantined).fetchall() == one.execute(quarantined).fetchall()
        assert _rows(many, "raw_events.landing_files", {"events_loaded", "duplicates_dropped"}) == _rows(
            one, "raw_events.landing_files", {"events_loaded", "duplicates_dropped"})
        # The same events (which copy of a duplicate is stored, and so its arrival columns, the order decides).
        events = "SELECT event_id FROM raw_events.usage_events ORDER BY 1"
        assert many.execute(events).fetchall() == one.execute(events).fetchall()
    assert sorted(p.name for p in (spread.root / "lakehouse" / "raw_events" / "usage_events").iterdir()) == [
        f"day={d}" for d in DAYS]
