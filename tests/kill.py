"""Killing a subprocess (`kill -9`, by PID) at a point the test drives: crash tests of the real entry points."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from typing import Callable


def kill_when(process: subprocess.Popen, ready: Callable[[], bool], timeout_s: float = 180) -> None:
    """kill -9 `process` as soon as `ready()` is true (polled every millisecond); fails if it ends first or
    the point is not reached within `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if ready():
            os.kill(process.pid, signal.SIGKILL)
            process.wait()
            return
        if process.poll() is not None:
            output = process.communicate()
            raise AssertionError(f"the process ended before the kill point: {output[-1]!r:.2000}")
        time.sleep(0.001)
    process.kill()
    raise AssertionError("the kill point was never reached")
