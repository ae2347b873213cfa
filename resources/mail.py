"""The mail connections as a Dagster resource: the registry, the provider endpoints, the OAuth apps.

`sandbox` is set from GTG_ENV by definitions.py, never inferred from missing secrets: in the sandbox
`endpoints()` starts the local Gmail / People and Graph servers for the duration of a run and
`ensure_sandbox_connections` registers the seeded workspaces' connections; in production the OAuth client
secrets arrive through `EnvVar` (definitions.py refuses to load without them) and the real APIs are used.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from dagster import ConfigurableResource

from pipelines import paths
from pipelines.mail_common.connections import ConnectionRegistry
from pipelines.mail_common.endpoints import REAL_ENDPOINTS, Endpoints, OAuthApps
from pipelines.mail_common.sandbox import running_sandbox, sandbox_accounts, seed_connections


class MailResource(ConfigurableResource):
    """Where the connection registry is, whether this is the sandbox, and the OAuth apps of the real
    providers. The default is not the sandbox: only an explicit `sandbox=True` starts fake servers."""

    connections_path: str = str(paths.connections_path())
    sandbox: bool = False
    google_client_id: str | None = None
    google_client_secret: str | None = None
    microsoft_client_id: str | None = None
    microsoft_client_secret: str | None = None
    microsoft_tenant: str = "common"

    def registry(self) -> ConnectionRegistry:
        return ConnectionRegistry(self.connections_path)

    def oauth(self) -> OAuthApps:
        return OAuthApps(self.google_client_id, self.google_client_secret, self.microsoft_client_id,
                         self.microsoft_client_secret, self.microsoft_tenant)

    @contextmanager
    def endpoints(self) -> Iterator[Endpoints]:
        """The real APIs, or the sandbox servers running until the block ends."""
        if not self.sandbox:
            yield REAL_ENDPOINTS
            return
        with running_sandbox(sandbox_accounts()) as endpoints:
            yield endpoints

    def ensure_sandbox_connections(self, cipher) -> None:
        """In the sandbox, register the seeded connections that are not registered yet."""
        if self.sandbox:
            seed_connections(self.registry(), cipher, sandbox_accounts())
