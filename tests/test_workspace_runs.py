"""A run the CLI executes is a run of the code location the webserver loads from workspace.yaml.

`python -m cli privacy process` runs a job the way `cli run` runs each of its jobs (cli._execute), as a
subprocess on an empty data folder and DAGSTER_HOME in tmp. The stored run is then compared with what Dagster's
own workspace loading makes of workspace.yaml (a real code server, as `dagster dev` starts it): the same remote
origin (location and repository name) and the same job snapshot, which is what lets the UI re-execute it
without a "different version" warning (tests/test_dagster_ui.py checks that in the browser).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from dagster import DagsterInstance, DagsterRunStatus
from dagster._core.workspace.load import load_workspace_process_context_from_yaml_paths

from assets.runs import PID_TAG

pytestmark = pytest.mark.timeout(600)

PROJECT_ROOT = Path(__file__).resolve().parent.parent
JOB = "data_subject_requests_job"


def test_a_cli_run_has_the_origin_and_snapshot_of_the_workspace_job(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GTG_") and k != "DAGSTER_HOME"}
    env.update(GTG_ENV="sandbox", GTG_DATA_DIR=str(tmp_path / "data"), DAGSTER_HOME=str(tmp_path / "home"),
               RUNTIME__DLTHUB_TELEMETRY="false")
    result = subprocess.run([sys.executable, "-m", "cli", "privacy", "process"], cwd=PROJECT_ROOT, env=env,
                            capture_output=True, text=True, timeout=500)
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    (run_id,) = re.findall(rf"^{JOB}: run ([0-9a-f-]{{36}}) success; checks passed 3/3$", result.stdout, re.MULTILINE)

    for key in [k for k in os.environ if k.startswith("GTG_")]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(PROJECT_ROOT)
    with DagsterInstance.from_config(str(tmp_path / "home")) as instance, \
            load_workspace_process_context_from_yaml_paths(instance, [str(PROJECT_ROOT / "workspace.yaml")]) as ws:
        (location,) = ws.create_request_context().code_locations
        (repository,) = location.get_repositories().values()
        job = repository.get_full_job(JOB)
        run = instance.get_run_by_id(run_id)

    assert run.status == DagsterRunStatus.SUCCESS
    assert run.tags[PID_TAG].isdigit()
    origin = run.remote_job_origin
    assert origin is not None
    assert (origin.location_name, origin.repository_origin.repository_name, origin.job_name) == \
        (location.name, repository.name, JOB) == ("definitions", "__repository__", JOB)
    assert origin == job.get_remote_origin()
    assert run.job_snapshot_id == job.identifying_job_snapshot_id
    assert run.job_code_origin.job_name == JOB
