"""The Google Ads app as a Dagster resource: the platform's developer token and OAuth client (through EnvVar in
production), the conversion window, and in the sandbox the local gRPC server for the duration of a run.

`sandbox` is set from GTG_ENV by definitions.py, never inferred from missing secrets.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from dagster import ConfigurableResource

from pipelines.google_ads import SyncOptions
from pipelines.google_ads.connect import GoogleAdsApp
from pipelines.google_ads.settings import CONVERSION_WINDOW_DAYS, HISTORY_DAYS


class GoogleAdsResource(ConfigurableResource):
    """Default: not the sandbox (only an explicit `sandbox=True` starts the fake server)."""

    sandbox: bool = False
    developer_token: str | None = None
    client_id: str | None = None
    client_secret: str | None = None
    conversion_window_days: int = CONVERSION_WINDOW_DAYS  # re-read every run; Google's own maximum is 90
    history_days: int = HISTORY_DAYS  # how far back a first sync reads
    endpoint_override: str | None = None  # host:port of an API server already running (a test's own sandbox)

    def app(self) -> GoogleAdsApp:
        if self.sandbox:
            from pipelines.google_ads.sandbox import sandbox_app

            return sandbox_app()
        return GoogleAdsApp(self.developer_token, self.client_id, self.client_secret)

    def options(self) -> SyncOptions:
        history = self.history_days
        if self.sandbox:
            from pipelines.google_ads.sandbox import HISTORY_DAYS as SANDBOX_HISTORY

            history = min(history, SANDBOX_HISTORY)
        return SyncOptions(conversion_window_days=self.conversion_window_days, history_days=history)

    @contextmanager
    def endpoint(self) -> Iterator[str | None]:
        """Google's endpoint (None), or the sandbox server's running until the block ends."""
        if self.endpoint_override or not self.sandbox:
            yield self.endpoint_override
            return
        from pipelines.google_ads.sandbox import running_sandbox

        with running_sandbox() as endpoint:
            yield endpoint
