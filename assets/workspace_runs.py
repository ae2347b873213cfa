"""Runs executed in this process that the UI re-executes like any other: they carry the origin of the code
location `dagster dev` loads from workspace.yaml.

`JobDefinition.execute_in_process` records a run with no repository origin and the snapshot of an ephemeral
copy of the job (its executor swapped for the in-process one), so the UI finds the job by name only and warns
on re-execute that it "may be a different version". Here a run is made the way the webserver makes one: the
job's snapshot as the code location defines it, the remote origin (location and repository name) read from
workspace.yaml with Dagster's own loader, the Python origin of the reconstructable job, the partition's tags
as `execute_in_process` sets them; `execute_run` then executes it in this process with the job's own executor
(in process unless GTG_EXECUTOR says otherwise, see definitions.py). No code server is started for it.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from dagster import DagsterInstance, JobExecutionResult
from dagster._core.definitions.reconstruct import ReconstructableRepository
from dagster._core.execution.api import execute_run
from dagster._core.execution.execute_in_process import merge_run_tags
from dagster._core.remote_origin import RemoteJobOrigin, RemoteRepositoryOrigin
from dagster._core.workspace.load import location_origins_from_yaml_paths
from dagster._grpc.server import _get_code_pointer
from dagster._grpc.utils import get_loadable_targets

from pipelines import paths

WORKSPACE_YAML = paths.PROJECT_ROOT / "workspace.yaml"


@dataclass(frozen=True)
class WorkspaceRepository:
    """The one repository of the workspace's one code location, loaded in this process as its code server
    loads it."""

    recon: ReconstructableRepository
    origin: RemoteRepositoryOrigin

    @property
    def location_name(self) -> str:
        return self.origin.code_location_origin.location_name

    @property
    def repository_name(self) -> str:
        return self.origin.repository_name

    def execute(self, instance: DagsterInstance, job_name: str, partition_key: str | None = None,
                tags: Mapping[str, str] | None = None,
                run_config: Mapping[str, object] | None = None) -> JobExecutionResult:
        """Create the run of `job_name` (one partition when given) with the workspace's origin and execute it
        here; a failed step fails the run, it does not raise."""
        job = self.recon.get_reconstructable_job(job_name)
        job_def = job.get_definition()
        run = instance.create_run_for_job(
            job_def, run_config=run_config,
            tags=merge_run_tags(job_def, partition_key, tags, None, instance, run_config),
            remote_job_origin=RemoteJobOrigin(self.origin, job_name), job_code_origin=job.get_python_origin())
        return execute_run(job, run, instance, raise_on_error=False)


@functools.cache
def workspace_repository(workspace_yaml: Path = WORKSPACE_YAML) -> WorkspaceRepository:
    """The repository workspace.yaml names (it names one code location holding one Definitions)."""
    (location,) = location_origins_from_yaml_paths([str(workspace_yaml)])
    target = location.loadable_target_origin
    (loadable,) = get_loadable_targets(
        python_file=target.python_file, module_name=target.module_name, package_name=target.package_name,
        autoload_defs_module_name=target.autoload_defs_module_name, working_directory=target.working_directory,
        attribute=target.attribute, resolve_lazy_defs=True)
    recon = ReconstructableRepository(_get_code_pointer(target, loadable),
                                      executable_path=target.executable_path or sys.executable)
    return WorkspaceRepository(recon, RemoteRepositoryOrigin(location, recon.get_definition().name))
