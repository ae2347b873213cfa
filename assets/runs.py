"""Runs whose process is gone: found, marked failed, their concurrency slots freed.

A run killed with SIGKILL (or by the kernel on a full disk) records nothing on its way out: Dagster keeps it
STARTED for ever, and with the `warehouse` pool counting in-progress runs the daemon would queue every later
run behind it. Dagster's run monitoring cannot see this for runs it did not launch through a run launcher that
checks worker health (the default launcher does not, and `cli run` executes in its own process). So each run
records its process: `cli run` tags its runs with `gtg/pid`, and a run launched by the daemon logs the pid of
its run worker in its first engine event. A run is abandoned when that process no longer exists, or the pid now
belongs to a process started after the run recorded it (pids are reused). The instance's storage is local
SQLite, so every pid it holds is one of this machine.

`fail_abandoned_runs` is called by `cli run` before it starts anything and by `abandoned_runs_sensor` in the
daemon every 30 s.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from dagster import (
    DagsterEventType,
    DagsterInstance,
    DagsterRunStatus,
    DefaultSensorStatus,
    RunsFilter,
    SensorEvaluationContext,
    SkipReason,
    sensor,
)

from pipelines.processes import process_alive

PID_TAG = "gtg/pid"
_WATCHED = [DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING, DagsterRunStatus.STARTED]


@dataclass(frozen=True)
class AbandonedRun:
    run_id: str
    job_name: str
    pid: int


def process_tags() -> dict[str, str]:
    """Tags a run executed in this process carries, so a later process can tell whether it still lives."""
    return {PID_TAG: str(os.getpid())}


def fail_abandoned_runs(instance: DagsterInstance) -> list[AbandonedRun]:
    """Mark failed every run whose process is gone and free the concurrency slots it holds; also free the slots
    still held by runs that ended (what `free_slots_after_run_end_seconds` does in the daemon, at once)."""
    abandoned = []
    for record in instance.get_run_records(RunsFilter(statuses=_WATCHED)):
        run = record.dagster_run
        owner = _run_process(instance, run.run_id, run.tags, record.create_timestamp.timestamp())
        if owner is None or process_alive(*owner):
            continue
        pid = owner[0]
        instance.report_run_failed(
            run, f"The process of this run (pid {pid}) is gone: it was killed or crashed without reporting. "
                 "Marked failed and its concurrency slots freed; rerun it (every load resumes where it stopped).")
        abandoned.append(AbandonedRun(run.run_id, run.job_name, pid))
    storage = instance.event_log_storage
    if storage.supports_global_concurrency_limits:
        holders = storage.get_concurrency_run_ids()
        ended = {r.dagster_run.run_id for r in instance.get_run_records(
            RunsFilter(run_ids=list(holders), statuses=[DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE,
                                                        DagsterRunStatus.CANCELED]))} if holders else set()
        for run_id in ended:
            storage.free_concurrency_slots_for_run(run_id)
    return abandoned


def _run_process(instance: DagsterInstance, run_id: str, tags: dict[str, str],
                 created: float) -> tuple[int, float] | None:
    """(pid, when it was recorded) of the process executing the run, or None while none is recorded yet (a
    launched run not started: Dagster's own start timeout covers it)."""
    if PID_TAG in tags:
        return int(tags[PID_TAG]), created
    for entry in instance.get_records_for_run(run_id, of_type=DagsterEventType.ENGINE_EVENT, limit=20).records:
        data = entry.event_log_entry.dagster_event.engine_event_data
        pid = data.metadata.get("pid") if data else None
        if pid is not None:
            return int(pid.value), entry.event_log_entry.timestamp
    return None


@sensor(minimum_interval_seconds=30, default_status=DefaultSensorStatus.RUNNING,
        description="Marks failed the runs whose process is gone (killed, crashed) and frees their pool slots, "
        "so no dead run keeps the warehouse pool.")
def abandoned_runs_sensor(context: SensorEvaluationContext) -> SkipReason:
    found = fail_abandoned_runs(context.instance)
    if not found:
        return SkipReason("every in-progress run has a live process")
    for run in found:
        context.log.warning(f"run {run.run_id} ({run.job_name}): process {run.pid} is gone; marked failed")
    return SkipReason(f"marked {len(found)} abandoned run(s) failed: {', '.join(r.run_id for r in found)}")
