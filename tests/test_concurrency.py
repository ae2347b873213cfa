"""Crash safety and concurrency of runs, from outside: real processes started, overlapped and killed by pid.

- A `cli run` killed with SIGKILL in the middle of a run leaves that run STARTED in the instance; the next
  `cli run` (or the daemon's `abandoned_runs_sensor`) marks it failed, and completes with exactly the tables of
  an uninterrupted run. A `cli run` started when nothing new landed starts no `usage_events_job` run.
- A process that finds the warehouse taken says whom it waits for, gives up after GTG_WAREHOUSE_WAIT_SECONDS
  and ends at once on SIGTERM or SIGINT; a Dagster run that cannot get the warehouse fails cleanly, saying so.
- Two ingestions over one landing folder, started at several offsets, load every file exactly once.
- Two `cli run` sharing one Dagster home both succeed, with exact tables and every run successful.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from dagster import DagsterInstance, DagsterRunStatus, RunsFilter, build_sensor_context

from assets.runs import PID_TAG, abandoned_runs_sensor
from cli import open_instance
from pipelines.sandbox.events import GenerationStats
from pipelines.warehouse import WAIT_SECONDS_ENV, lock_path
from tests.conftest import Platform

pytestmark = pytest.mark.timeout(600)

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# Environment variables that would move a path away from the test's data folder or change the outcome.
_OVERRIDES = ("GTG_WAREHOUSE_PATH", "GTG_EVENTS_LANDING_URL", "GTG_KEYRING_PATH", "GTG_MASTER_KEY_FILE",
              "GTG_MASTER_KEY", "GTG_ENV", "GTG_QUARANTINE_MAX_SHARE", "GTG_SANDBOX_EVENTS", "DAGSTER_HOME",
              WAIT_SECONDS_ENV)
EVENTS = dict(events=3000, days=3, file_events=500)
# A process that holds the warehouse lock until it is killed, as any writer of the platform would.
HOLDER = ("import sys, time\nfrom pipelines.warehouse import warehouse_lock\n"
          "with warehouse_lock(sys.argv[1], 'a test holding the warehouse'):\n"
          "    print('held', flush=True)\n    time.sleep(600)\n")


def _env(platform: Platform, home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _OVERRIDES}
    # Small sandbox mailboxes: the mail syncs of a `cli run` are not under test here.
    env.update(GTG_ENV="sandbox", GTG_DATA_DIR=str(platform.root), DAGSTER_HOME=str(home), RUNTIME__DLTHUB_TELEMETRY="false",
               PYTHONUNBUFFERED="1", GTG_SANDBOX_MAIL_MESSAGES="20", GTG_SANDBOX_MAIL_CONTACTS="5", **extra)
    return env


class Process:
    """A child process whose output goes to files (pipes left unread could block it while it holds the lock)."""

    def __init__(self, command: list[str], env: dict[str, str], logs: Path) -> None:
        logs.mkdir(parents=True, exist_ok=True)
        number = len(list(logs.glob("*.out")))
        self.out_path, self.err_path = logs / f"{number}.out", logs / f"{number}.err"
        with self.out_path.open("w") as out, self.err_path.open("w") as err:
            self.popen = subprocess.Popen(command, cwd=PROJECT_ROOT, env=env, text=True, stdout=out, stderr=err)
        self.pid = self.popen.pid

    @property
    def err(self) -> str:
        return self.err_path.read_text()

    def finish(self, timeout: float = 400) -> tuple[int, str, str]:
        self.popen.wait(timeout=timeout)
        return self.popen.returncode, self.out_path.read_text(), self.err

    def alive(self) -> bool:
        return self.popen.poll() is None


def _cli(env: dict[str, str], logs: Path) -> Process:
    return Process([sys.executable, "-m", "cli", "run"], env, logs)


def _assert_exact_tables(platform: Platform, stats: GenerationStats) -> None:
    assert platform.query("SELECT count(*), count(DISTINCT event_id) FROM raw_events.usage_events") == [
        (stats.valid_events, stats.valid_events)]
    assert platform.query("SELECT count(*) FROM raw_events.usage_events_quarantine") == [(stats.bad_lines,)]
    assert platform.query("SELECT count(*), sum(events_loaded), sum(lines) FROM raw_events.landing_files") == [
        (len(stats.files), stats.valid_events, stats.lines)]


def _wait_for(predicate, what: str, process: Process, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert process.alive(), f"the process ended before {what}: {process.finish()}"
        assert time.monotonic() < deadline, f"never saw {what}"
        time.sleep(0.1)


def _holder(warehouse: Path) -> subprocess.Popen:
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(warehouse)], cwd=PROJECT_ROOT,
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    return holder


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The Dagster home the test's processes share, empty as on a fresh machine (this process reads the same
    instance once they created it)."""
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    return tmp_path / "dagster_home"


@pytest.fixture
def logs(tmp_path: Path) -> Path:
    return tmp_path / "logs"


def test_a_killed_cli_run_is_failed_and_the_next_run_completes_exactly(
        platform: Platform, home: Path, logs: Path) -> None:
    stats = platform.generate(**EVENTS)
    env = _env(platform, home)
    instance = open_instance()  # as `cli` opens it (it creates the instance's storage first)
    first = _cli(env, logs)

    def started() -> list:
        return instance.get_runs(RunsFilter(job_name="usage_events_job", statuses=[DagsterRunStatus.STARTED]))

    # The kill point: the first day's run is executing (it holds the warehouse), then SIGKILL by pid.
    _wait_for(lambda: bool(started()), "a STARTED usage_events_job run", first)
    os.kill(first.pid, signal.SIGKILL)
    first.finish()
    (dead,) = instance.get_runs(RunsFilter(job_name="usage_events_job"))
    assert dead.tags[PID_TAG] == str(first.pid)
    assert instance.get_run_by_id(dead.run_id).status == DagsterRunStatus.STARTED  # nothing recorded the kill

    code, out, err = _cli(env, logs).finish()
    assert code == 0, out + err
    assert (f"run {dead.run_id} (usage_events_job): its process {first.pid} is gone (killed or crashed): "
            "marked failed, its pool slots freed") in out.splitlines()
    assert instance.get_run_by_id(dead.run_id).status == DagsterRunStatus.FAILURE
    assert f"The process of this run (pid {first.pid}) is gone" in instance.all_logs(dead.run_id)[-1].message
    assert not instance.get_runs(RunsFilter(statuses=[DagsterRunStatus.STARTED, DagsterRunStatus.STARTING]))
    _assert_exact_tables(platform, stats)

    # Nothing new landed: a further run starts no usage_events_job run at all.
    runs_before = len(instance.get_runs(RunsFilter(job_name="usage_events_job")))
    code, out, err = _cli(env, logs).finish()
    assert code == 0, out + err
    assert "usage_events_job: nothing new landed (every landed file is loaded)" in out.splitlines()
    assert len(instance.get_runs(RunsFilter(job_name="usage_events_job"))) == runs_before
    _assert_exact_tables(platform, stats)


def test_the_sensor_fails_a_run_killed_while_it_waited_for_the_warehouse(
        platform: Platform, home: Path, logs: Path) -> None:
    """A run started by Dagster's own CLI (no pid tag: its pid is read from its engine event), killed while it
    waits for the warehouse; `abandoned_runs_sensor`, as the daemon evaluates it, fails it and frees its slots."""
    platform.generate(**EVENTS)
    platform.ingest()
    instance = open_instance()
    holder = _holder(platform.warehouse)
    try:
        run = Process([sys.executable, "-m", "dagster", "asset", "materialize", "-m", "definitions",
                       "--select", "raw_events/usage_events", "--partition", "2026-11-24"], _env(platform, home), logs)

        def waiting() -> bool:
            runs = instance.get_runs(RunsFilter(statuses=[DagsterRunStatus.STARTED]))
            return bool(runs) and any("waiting for the warehouse" in (e.message or "")
                                      for e in instance.all_logs(runs[0].run_id))

        _wait_for(waiting, "a run waiting for the warehouse", run)
        os.kill(run.pid, signal.SIGKILL)
        run.finish()
    finally:
        holder.kill()
        holder.wait()
    (dead,) = instance.get_runs()
    assert PID_TAG not in dead.tags and dead.status == DagsterRunStatus.STARTED
    with build_sensor_context(instance=instance) as context:
        assert abandoned_runs_sensor(context).skip_message == f"marked 1 abandoned run(s) failed: {dead.run_id}"
    assert instance.get_run_by_id(dead.run_id).status == DagsterRunStatus.FAILURE
    assert f"The process of this run (pid {run.pid}) is gone" in instance.all_logs(dead.run_id)[-1].message
    assert not instance.event_log_storage.get_concurrency_run_ids()
    with build_sensor_context(instance=instance) as context:  # once failed, it is left alone
        assert abandoned_runs_sensor(context).skip_message == "every in-progress run has a live process"


def test_a_waiting_cli_run_says_whom_it_waits_for_and_gives_up(platform: Platform, home: Path, logs: Path) -> None:
    platform.generate(**EVENTS)
    platform.ingest()  # the warehouse exists; the holder then keeps it
    before = platform.warehouse.read_bytes()
    holder = _holder(platform.warehouse)
    try:
        code, out, err = _cli(_env(platform, home, **{WAIT_SECONDS_ENV: "3"}), logs).finish()
    finally:
        holder.kill()
        holder.wait()
    assert code == 3, out + err
    waiting = [line for line in err.splitlines() if "waiting for the warehouse" in line]
    assert waiting and f"in use by pid {holder.pid} (a test holding the warehouse, since " in waiting[0]
    assert err.splitlines()[-1].startswith(f"stopped: the warehouse {platform.warehouse} is in use by pid "
                                           f"{holder.pid} (a test holding the warehouse")
    assert "gave up after waiting 3 s (set GTG_WAREHOUSE_WAIT_SECONDS to wait longer)" in err.splitlines()[-1]
    assert not open_instance().get_runs()  # no run was started
    assert platform.warehouse.read_bytes() == before


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_waiting_cli_run_ends_on_a_signal(platform: Platform, home: Path, logs: Path, signum: int) -> None:
    platform.generate(**EVENTS)
    platform.ingest()
    holder = _holder(platform.warehouse)
    try:
        waiter = _cli(_env(platform, home), logs)
        _wait_for(lambda: "waiting for the warehouse" in waiter.err, "the waiting message", waiter)
        waiter.popen.send_signal(signum)
        code, _, _ = waiter.finish(timeout=60)  # ends at once: no hang, no busy loop
    finally:
        holder.kill()
        holder.wait()
    assert code == -signum
    assert not open_instance().get_runs()


def test_a_dagster_run_that_cannot_get_the_warehouse_fails_cleanly(
        platform: Platform, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.test_ingestion_assets import _defs

    platform.generate(**EVENTS)
    platform.ingest()
    before = platform.warehouse.read_bytes()
    monkeypatch.setenv(WAIT_SECONDS_ENV, "2")
    holder = _holder(platform.warehouse)
    try:
        with DagsterInstance.ephemeral() as instance:
            result = _defs(platform).resolve_job_def("usage_events_job").execute_in_process(
                instance=instance, partition_key="2026-11-24", raise_on_error=False)
            entries = instance.all_logs(result.run_id)
            messages = [e.message or "" for e in entries]
            errors = [e.dagster_event.event_specific_data.error.to_string() for e in entries
                      if e.dagster_event and getattr(e.dagster_event.event_specific_data, "error", None)]
    finally:
        holder.kill()
        holder.wait()
    assert not result.success
    purpose = f"Dagster run {result.run_id} (usage_events_job, 2026-11-24)"
    assert any(m.startswith(f"{purpose}: waiting for the warehouse {platform.warehouse}, in use by pid {holder.pid} "
                            "(a test holding the warehouse") for m in messages)
    assert any(f"WarehouseBusy: the warehouse {platform.warehouse} is in use by pid {holder.pid} (a test holding the "
               f"warehouse" in e and f"{purpose} gave up after waiting 2 s" in e for e in errors), errors
    assert platform.warehouse.read_bytes() == before


@pytest.mark.parametrize("offset", [0.0, 0.5, 1.0, 2.0])
def test_two_ingestions_over_one_landing_load_every_file_once(platform: Platform, logs: Path, offset: float) -> None:
    stats = platform.generate(**EVENTS)
    env = _env(platform, platform.root / "unused_home")
    command = [sys.executable, "-m", "pipelines.usage_events", "--landing", str(platform.landing),
               "--warehouse", str(platform.warehouse)]
    first = Process(command, env, logs)
    time.sleep(offset)  # the overlap under test, not a measurement
    second = Process(command, env, logs)
    results = [first.finish(), second.finish()]
    assert [code for code, _, _ in results] == [0, 0], results
    _assert_exact_tables(platform, stats)
    # One of them loaded everything; the other waited and found every file in the ledger.
    loaded = sorted(json.loads(out)["events_loaded"] for _, out, _ in results)
    assert loaded == [0, stats.valid_events]
    assert not lock_path(platform.warehouse).read_bytes()  # released, and no holder recorded


def test_a_foreign_lock_is_reported_in_plain_words(platform: Platform, home: Path) -> None:
    platform.generate(**EVENTS)
    platform.ingest()
    code = "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('open', flush=True); time.sleep(600)"
    shell = subprocess.Popen([sys.executable, "-c", code, str(platform.warehouse)], stdout=subprocess.PIPE, text=True)
    try:
        assert shell.stdout.readline().strip() == "open"
        (platform.landing / "dt=2026-11-24" / "late.ndjson").write_text("{}\n")
        result = subprocess.run([sys.executable, "-m", "pipelines.usage_events"], cwd=PROJECT_ROOT, text=True,
                                env=_env(platform, home), capture_output=True, timeout=300)
    finally:
        shell.kill()
        shell.wait()
    assert result.returncode == 3
    assert result.stderr.splitlines()[-1] == (
        f"stopped: the warehouse {platform.warehouse} is open in another program (pid {shell.pid}) that does not "
        "take the platform's lock (a DuckDB shell or notebook, say); DuckDB lets no one else in while it is open: "
        "close it and run again")
    assert "credentials" not in result.stderr


def test_two_cli_runs_sharing_a_dagster_home_both_succeed_exactly(platform: Platform, home: Path, logs: Path) -> None:
    stats = platform.generate(**EVENTS)
    env = _env(platform, home)
    first, second = _cli(env, logs), _cli(env, logs)
    (code_1, out_1, err_1), (code_2, out_2, err_2) = first.finish(), second.finish()
    assert (code_1, code_2) == (0, 0), out_1 + err_1 + out_2 + err_2
    assert "waiting for the warehouse" in err_1 + err_2  # they took turns, visibly
    _assert_exact_tables(platform, stats)
    instance = open_instance()
    runs = instance.get_runs()
    assert {r.status for r in runs} == {DagsterRunStatus.SUCCESS}
    # Every day was loaded by exactly one run; the other process found it loaded and started none for it.
    days = instance.get_runs(RunsFilter(job_name="usage_events_job"))
    assert sorted(r.tags["dagster/partition"] for r in days) == sorted(stats.lines_by_day)
    loaded = re.findall(r"^  all days: lines_read \d+, events_loaded (\d+),", out_1 + out_2, re.MULTILINE)
    assert sum(int(n) for n in loaded) == stats.valid_events
