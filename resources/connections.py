"""The connection registry as a Dagster resource, shared by every provider's assets, the sensor and the CLI.

`sandbox` (set from GTG_ENV by definitions.py) lets the sensor register each provider's seeded sandbox
connections; in production only the CRM app adds connections.
"""

from __future__ import annotations

from dagster import ConfigurableResource

from pipelines import paths
from pipelines.connections.registry import ConnectionRegistry


class ConnectionsResource(ConfigurableResource):
    """Where the registry file is, and whether this is the sandbox."""

    connections_path: str = str(paths.connections_path())
    sandbox: bool = False

    def registry(self) -> ConnectionRegistry:
        return ConnectionRegistry(self.connections_path)
