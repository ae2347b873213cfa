"""The events landing location as a Dagster resource (a folder or any fsspec URL), and which workspaces may
land events there."""

from __future__ import annotations

from dagster import ConfigurableResource

from pipelines import paths
from pipelines.workspaces import known_workspaces


class LandingResource(ConfigurableResource):
    """Where tracker files land: `<url>/dt=YYYY-MM-DD/*.ndjson[.gz]`; the workspace and connection registries
    say which workspaces the platform knows (events of others are quarantined)."""

    url: str = paths.events_landing_url()
    workspaces_path: str = str(paths.workspaces_path())
    connections_path: str = str(paths.connections_path())

    def known_workspaces(self) -> frozenset[str]:
        return known_workspaces(self.workspaces_path, self.connections_path)
