"""Meta (Facebook) ads as a Dagster resource: where the Graph API is and the Meta app that signs requests
(the registry is the `connections` resource, shared with every provider).

`sandbox` is set from GTG_ENV by definitions.py: in the sandbox `endpoint()` starts the local Graph API server
for the duration of a run; in production the real Graph API is used, and the app id and secret (optional:
they add `appsecret_proof` to each request, which an app can require) arrive through `EnvVar`.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from dagster import ConfigurableResource

from pipelines.facebook.client import GraphEndpoint
from pipelines.facebook.sandbox import running_sandbox, sandbox_world


class FacebookResource(ConfigurableResource):
    """Whether this is the sandbox, and the Meta app of the real API. The default is not the sandbox."""

    sandbox: bool = False
    app_id: str | None = None
    app_secret: str | None = None
    piece_rows: int | None = None  # insight rows per dlt load of a big sync (default: SyncOptions.piece_rows)

    @contextmanager
    def endpoint(self) -> Iterator[GraphEndpoint]:
        """The real Graph API, or the sandbox server running until the block ends."""
        if not self.sandbox:
            yield GraphEndpoint(app_id=self.app_id, app_secret=self.app_secret)
            return
        with running_sandbox(sandbox_world()) as endpoint:
            yield endpoint
