"""The CRM app database as a Dagster resource: its URL, through `EnvVar` in production.

In the sandbox, with no URL set, the generated SQLite app database is used (created on first use); setting
GTG_CRM_APP_DATABASE_URL switches to the real one and nothing else changes. The removal guard's settings
(`pipelines.crm_app.removed.RemovalGuard`) are the resource's too, so a run's config can allow one table's
removals for that run alone.
"""

from __future__ import annotations

from pathlib import Path

from dagster import ConfigurableResource

from pipelines import paths
from pipelines.crm_app import RemovalGuard
from pipelines.crm_app import sandbox as app_sandbox
from pipelines.crm_app.settings import REMOVAL_GUARD_MIN_ROWS, REMOVAL_GUARD_SHARE
from pipelines.workspaces import WorkspaceRegistry


class CrmAppResource(ConfigurableResource):
    """`database_url`: a SQLAlchemy URL (postgresql+psycopg://user:password@host/db); unset in the sandbox,
    which uses the generated file at `sandbox_path`. The app's workspaces join the registry at
    `workspaces_path`. A sync removes at most `max_removed_share` of a table's mirrored rows deleted outright
    in the app (tables under `removal_guard_min_rows` rows excepted) unless `allow_removals` names the table
    (comma-separated, `*` for all; GTG_CRM_APP_ALLOW_REMOVALS, or a run's config for that run)."""

    database_url: str | None = None
    sandbox: bool = False
    sandbox_path: str = str(paths.crm_app_sandbox_path())
    workspaces_path: str = str(paths.workspaces_path())
    max_removed_share: float = REMOVAL_GUARD_SHARE
    removal_guard_min_rows: int = REMOVAL_GUARD_MIN_ROWS
    allow_removals: str = ""

    def url(self) -> str:
        if self.database_url:
            return self.database_url
        if not self.sandbox:
            raise ValueError("GTG_CRM_APP_DATABASE_URL is not set: the app database is unknown")
        paths.private_dir(Path(self.sandbox_path).parent)
        url = app_sandbox.sandbox_url(self.sandbox_path)
        app_sandbox.create(url)
        return url

    def removal_guard(self) -> RemovalGuard:
        return RemovalGuard.allowing(self.allow_removals, max_share=self.max_removed_share,
                                     min_rows=self.removal_guard_min_rows)

    def registry(self) -> WorkspaceRegistry:
        return WorkspaceRegistry(self.workspaces_path)
