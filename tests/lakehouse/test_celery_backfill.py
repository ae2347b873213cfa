"""Runs spread over workers: a 7-day backfill of the events on three Celery workers (Debian's redis-server as
broker, started here) equals the same days run one after another in process."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import duckdb
import pytest
import redis
from dagster import DagsterInstance

from pipelines.privacy.protect import value_context
from pipelines.warehouse import BACKEND_ENV
from tests.conftest import Platform, landed_lines
from tests.lakehouse.conftest import twin
from tests.lakehouse.test_lakehouse_storage import CIPHERTEXT, _rows
from tests.test_ingestion_assets import _run

WORKERS = 3
NICE = ["nice", "-n", "15"]
DAYS = [f"2026-11-{d}" for d in range(18, 25)]
ROOT = Path(__file__).resolve().parents[2]


EVENTS = "raw_events.usage_events"
ARRIVAL = ("received_date", "source_file", "source_line")


def _stored_events(platform: Platform) -> dict[str, dict[str, object]]:
    """Every stored event by id: each column as stored, ciphertext decrypted (two encryptions of one value
    differ), the landed file relative to the platform's landing folder; dlt's own columns left out."""
    with duckdb.connect(str(platform.warehouse), read_only=True) as con:
        found = con.execute(f"SELECT * FROM {EVENTS}")
        columns = [d[0] for d in found.description]
        rows = [{c: v for c, v in zip(columns, row) if not c.startswith("_dlt")} for row in found.fetchall()]
    landing = f"{platform.landing.resolve().as_uri()}/"
    by_workspace: dict[str, list[dict]] = {}
    for row in rows:
        assert row["source_file"].startswith(landing)
        row["source_file"] = row["source_file"].removeprefix(landing)
        by_workspace.setdefault(row["workspace_id"], []).append(row)
    with platform.keyring() as cipher:
        for workspace, held in by_workspace.items():
            for column in sorted(CIPHERTEXT & set(columns)):
                plain = cipher.decrypt(workspace, [r[column] for r in held], subject_refs=[r["subject_ref"] for r in held],
                                       context=value_context(EVENTS, column)).to_pylist()
                for row, value in zip(held, plain):
                    row[column] = value
    return {row["event_id"]: row for row in rows}


def _without_arrival(row: dict[str, object]) -> dict[str, object]:
    return {k: v for k, v in row.items() if k not in ARRIVAL}


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
    """Seven landed days, twice (the serial platform and the Celery one), with the same keys: each workspace's
    key is made before the copy, so both give the same blind indexes and subject references."""
    stats = platform.generate(days=7, events=3500, file_events=500)
    platform.stats = stats
    with platform.keyring() as cipher:
        for workspace in platform.known_workspaces():
            cipher.blind_index(workspace, ["-"], kind="user.unique_id")
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
    # The same events stored, row for row and value for value (ciphertext decrypted). Which copy of an event that
    # landed twice is stored, and so its arrival columns, the order decides; every other event is equal whole.
    serial_events, spread_events = _stored_events(serial), _stored_events(spread)
    assert serial_events.keys() == spread_events.keys() and len(serial_events) == stats.valid_events
    landed = Counter(line.get("event_id") for line in landed_lines(serial.landing))
    twice = {e for e in serial_events if landed[e] > 1}
    assert {e: r for e, r in spread_events.items() if e not in twice} == {
        e: r for e, r in serial_events.items() if e not in twice}
    assert {e: _without_arrival(r) for e, r in spread_events.items() if e in twice} == {
        e: _without_arrival(r) for e, r in serial_events.items() if e in twice}
    assert len(serial_events) - len(twice) > len(twice) > 0
    assert sorted(p.name for p in (spread.root / "lakehouse" / "raw_events" / "usage_events").iterdir()) == [
        f"day={d}" for d in DAYS]
