"""A run killed (SIGKILL) in the middle and restarted ends with exactly the tables of an uninterrupted run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipelines.paths import PROJECT_ROOT
from pipelines.sandbox.events import generate_events
from pipelines.workspaces import known_workspaces
from tests.conftest import END_DATE, Platform

RUN = "import sys; from pathlib import Path; from tests.conftest import Platform; " \
      "Platform(Path(sys.argv[1])).ingest(landing=sys.argv[2])"

# Comparable content: personal columns are compared decrypted (ciphertexts differ by their random nonces).
EVENT_COLUMNS = ("event_id, workspace_id, event_type, occurred_at, received_date, ip_network, browser_family, "
                 "device_class, page_path, consent_analytics, source_file, source_line")


# dlt closes a file every this many rows, so the events load as several jobs and a kill can fall between them.
FILE_MAX_ROWS = "20000"


def _start(root: Path, landing: Path) -> subprocess.Popen:
    root.mkdir(parents=True, exist_ok=True)
    Platform(root).register_workspaces(*known_workspaces(landing.parent / "workspaces.sqlite"))
    log = open(root.parent / "ingest.log", "ab")
    env = {**os.environ, "DATA_WRITER__FILE_MAX_ITEMS": FILE_MAX_ROWS}
    return subprocess.Popen([sys.executable, "-c", RUN, str(root), str(landing)], cwd=PROJECT_ROOT,
                            stdout=log, stderr=log, env=env)


def _finish(root: Path, landing: Path) -> None:
    """Run to completion; on failure show the end of the log (counts and stack traces only)."""
    code = _start(root, landing).wait(timeout=300)
    log = (root.parent / "ingest.log").read_text(errors="replace")
    assert code == 0, "\n".join(line for line in log.splitlines() if "WARNING" not in line)[-4000:]


def _snapshot(platform: Platform) -> dict:
    events = platform.query(f"SELECT {EVENT_COLUMNS} FROM raw_events.usage_events ORDER BY event_id")
    keys = platform.query("SELECT workspace_id, subject_ref, ip, user_id FROM raw_events.usage_events ORDER BY event_id")
    with platform.keyring() as keyring:
        decrypted = {
            name: keyring.decrypt_many([k[0] for k in keys], [k[1] for k in keys], [k[i] for k in keys],
                                       context=f"usage_events.{name}").to_pylist()
            for name, i in (("ip", 2), ("user_id", 3))
        }
    return {
        "events": events,
        "decrypted": decrypted,
        "quarantine": platform.query(
            "SELECT source_file, source_line, reason FROM raw_events.usage_events_quarantine ORDER BY ALL"),
        "ledger": platform.query(
            "SELECT file_url, lines, events_loaded, duplicates_dropped, lines_quarantined "
            "FROM raw_events.landing_files ORDER BY ALL"),
        "unique": platform.query("SELECT count(*) = count(DISTINCT event_id) FROM raw_events.usage_events"),
    }


@pytest.fixture(scope="module")
def landing(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("crash") / "landing"
    generate_events(str(root), events=60_000, seed=3, days=3, end_date=END_DATE, file_events=5_000,
                    workspaces_path=root.parent / "workspaces.sqlite")
    return root


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory, landing: Path) -> dict:
    platform = Platform(tmp_path_factory.mktemp("uninterrupted") / "data")
    _finish(platform.root, landing)
    event_files = sum(j.job_file_info.table_name == "usage_events" for j in platform.last_load_jobs()["completed_jobs"])
    return {**_snapshot(platform), "event_files": event_files}


def _moment(root: Path, phase: str) -> bool:
    """Whether the running ingestion has reached `phase`, seen from the files it leaves."""
    pipeline = root / "dlt" / "usage_events"
    if phase == "parsing":
        return (root / "work").exists() and any((root / "work").glob("run-*"))
    if phase == "extracted":
        return any((pipeline / "normalize" / "extracted").glob("*")) if (pipeline / "normalize").exists() else False
    if phase == "loading":
        return any((pipeline / "load" / "normalized").glob("*")) if (pipeline / "load").exists() else False
    raise ValueError(phase)


@pytest.mark.parametrize("phase", ["parsing", "extracted", "loading"])
def test_killed_run_restarts_to_the_same_tables(tmp_path: Path, landing: Path, uninterrupted: dict, phase: str) -> None:
    platform = Platform(tmp_path / "data")
    process = _start(platform.root, landing)
    deadline = time.monotonic() + 120
    while not _moment(platform.root, phase):
        assert process.poll() is None, f"the run ended before reaching {phase}"
        assert time.monotonic() < deadline
        time.sleep(0.005)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()

    _finish(platform.root, landing)

    expected = {k: v for k, v in uninterrupted.items() if k != "event_files"}
    assert _snapshot(platform) == expected
    assert uninterrupted["event_files"] == -(-len(uninterrupted["events"]) // int(FILE_MAX_ROWS))
    assert uninterrupted["unique"] == [(True,)]
    assert len(uninterrupted["events"]) > 50_000
    assert list((platform.root / "work").iterdir()) == []
