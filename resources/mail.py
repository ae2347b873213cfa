"""The mail providers as a Dagster resource: their endpoints and OAuth apps (the registry is the
`connections` resource, shared with every provider).

`sandbox` is set from GTG_ENV by definitions.py, never inferred from missing secrets: in the sandbox
`endpoints()` starts the local Gmail / People and Graph servers for the duration of a run; in production the
OAuth client secrets arrive through `EnvVar` (definitions.py refuses to load without them) and the real APIs
are used.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from dagster import ConfigurableResource

from pipelines.mail_common.endpoints import REAL_ENDPOINTS, Endpoints, OAuthApps
from pipelines.mail_common.sandbox import running_sandbox, sandbox_accounts


class MailResource(ConfigurableResource):
    """Whether this is the sandbox, and the OAuth apps of the real providers. The default is not the
    sandbox: only an explicit `sandbox=True` starts fake servers."""

    sandbox: bool = False
    google_client_id: str | None = None
    google_client_secret: str | None = None
    microsoft_client_id: str | None = None
    microsoft_client_secret: str | None = None
    microsoft_tenant: str = "common"

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
