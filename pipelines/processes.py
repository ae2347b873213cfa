"""Whether the process that left something behind (a run, a work file) is still alive.

A pid alone is not enough: a killed process can linger as a zombie, and its pid can be handed to a newer
process. So a process counts as alive only if it is not a zombie and it already existed when its trace was
recorded (`recorded_at`, epoch seconds: the run's record, the work file's modification time).
"""

from __future__ import annotations

import psutil

# `create_time` has a coarse clock: a process started up to this long after the record is still the owner.
_PID_REUSE_SLACK_SECONDS = 1.0


def process_alive(pid: int, recorded_at: float) -> bool:
    try:
        process = psutil.Process(pid)
        return (process.status() != psutil.STATUS_ZOMBIE
                and process.create_time() <= recorded_at + _PID_REUSE_SLACK_SECONDS)
    except psutil.NoSuchProcess:
        return False
