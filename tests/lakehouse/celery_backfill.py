"""Run the events job for one day with the executor of the environment (GTG_EXECUTOR=celery in the test) and
print its status and counts as JSON. A backfill starts one of these per day at once, as the daemon launches each
run in its own process; the definitions choose their executor when they load."""

from __future__ import annotations

import json
import sys

from dagster import DagsterInstance, execute_job
from dagster._core.definitions.reconstruct import ReconstructableRepository

COUNTS = ("lines_read", "events_loaded", "duplicates_dropped", "lines_quarantined")


def main(day: str) -> None:
    job = ReconstructableRepository.for_module("definitions", "defs").get_reconstructable_job("usage_events_job")
    with execute_job(job, instance=DagsterInstance.get(), tags={"dagster/partition": day},
                     raise_on_error=False) as result:
        (materialization,) = result.get_asset_materialization_events()
        meta = materialization.materialization.metadata
        steps = {e.step_key: e.pid for e in result.all_events if e.event_type_value == "STEP_START"}
        print(json.dumps({"day": day, "success": result.success, **{k: meta[k].value for k in COUNTS},
                          "checks": [e.passed for e in result.get_asset_check_evaluations()],
                          "executor": result.job_def.executor_def.name, "step_pids": sorted(set(steps.values()))}))


if __name__ == "__main__":
    main(sys.argv[1])
