"""The CRM app database as a Dagster resource: its URL, through `EnvVar` in production.

In the sandbox, with no URL set, the generated SQLite app database is used (created on first use); setting
GTG_CRM_APP_DATABASE_URL switches to the real one and nothing else changes.
"""

from __future__ import annotations

from pathlib import Path

from dagster import ConfigurableResource

from pipelines import paths
from pipelines.crm_app import sandbox as app_sandbox
from pipelines.workspaces import WorkspaceRegistry


class CrmAppResource(ConfigurableResource):
    """`database_url`: a SQLAlchemy URL (postgresql+psycopg://user:password@host/db); unset in the sandbox,
    which uses the generated file at `sandbox_path`. The app's workspaces join the registry at
    `workspaces_path`."""

    database_url: str | None = None
    sandbox: bool = False
    sandbox_path: str = str(paths.crm_app_sandbox_path())
    workspaces_path: str = str(paths.workspaces_path())

    def url(self) -> str:
        if self.database_url:
            return self.database_url
        if not self.sandbox:
            raise ValueError("GTG_CRM_APP_DATABASE_URL is not set: the app database is unknown")
        paths.private_dir(Path(self.sandbox_path).parent)
        url = app_sandbox.sandbox_url(self.sandbox_path)
        app_sandbox.create(url)
        return url

    def registry(self) -> WorkspaceRegistry:
        return WorkspaceRegistry(self.workspaces_path)
