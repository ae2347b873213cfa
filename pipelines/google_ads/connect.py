"""A registered connection turned into a run of the source, and the run's outcome written back to the registry.

The platform's Google Ads app — developer token and OAuth client — comes from the environment (production) or
the sandbox; the connection's tokens and login customer id (its registry `account`) are decrypted only into the
client being built. After dlt has loaded: the cursors are saved, a token google-auth refreshed is kept
(encrypted), and a run the daily quota stopped leaves the connection `erroring` with that reason, so the UI and
`cli connections list` say why its data ends early; the next run resumes from the saved cursors.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from pipelines.connections.registry import Connection, ConnectionRegistry
from pipelines.connections.report import SyncReport
from pipelines.google_ads import GoogleAdsRun, SyncOptions
from pipelines.google_ads.client import GOOGLE_TOKEN_URI, AdsAccess, AdsApi, ads_client
from pipelines.google_ads.settings import PROVIDER

# The platform's Google Ads app, by field of GoogleAdsApp, and the environment variable each comes from.
APP_ENV = {"developer_token": "GTG_GOOGLE_ADS_DEVELOPER_TOKEN", "client_id": "GTG_GOOGLE_ADS_CLIENT_ID",
           "client_secret": "GTG_GOOGLE_ADS_CLIENT_SECRET"}
QUOTA_STATUS = "DailyQuotaExhausted"


class MissingGoogleAdsApp(RuntimeError):
    """Production without one of the app's secrets: the message names the variable, never a value."""


@dataclass(frozen=True)
class GoogleAdsApp:
    developer_token: str | None = None
    client_id: str | None = None
    client_secret: str | None = None
    token_uri: str = GOOGLE_TOKEN_URI  # where access tokens are refreshed

    @classmethod
    def from_env(cls) -> GoogleAdsApp:
        return cls(**{field: os.environ.get(name) for field, name in APP_ENV.items()})


def require_app_env() -> None:
    missing = [name for name in APP_ENV.values() if not os.environ.get(name, "").strip()]
    if missing:
        raise MissingGoogleAdsApp(f"GTG_ENV=production but {', '.join(missing)} not set: the Google Ads source needs "
                                  "the platform's developer token and OAuth client")


def open_run(registry: ConnectionRegistry, cipher, connection: Connection, app: GoogleAdsApp, *,
             endpoint: str | None, options: SyncOptions, warehouse_path: str | Path | None) -> GoogleAdsRun:
    """The source's run for one registered connection."""
    if connection.provider != PROVIDER:
        raise ValueError(f"connection {connection.connection_id} is a {connection.provider} connection")
    tokens = registry.tokens(cipher, connection)
    login_customer_id = (registry.account(cipher, connection) or "").replace("-", "")
    access = AdsAccess(developer_token=app.developer_token or "", login_customer_id=login_customer_id,
                       access_token=tokens.access_token, refresh_token=tokens.refresh_token,
                       client_id=app.client_id, client_secret=app.client_secret, endpoint=endpoint,
                       token_uri=app.token_uri)
    report = SyncReport(connection.connection_id, PROVIDER)
    return GoogleAdsRun(AdsApi(ads_client(access), report), connection.connection_id, connection.workspace_id,
                        login_customer_id, dict(connection.sync_state), report, options,
                        warehouse_path=Path(warehouse_path) if warehouse_path else None)


def record_loaded(registry: ConnectionRegistry, cipher, connection: Connection, run: GoogleAdsRun,
                  access_token: str | None) -> None:
    """After dlt loaded the run: its cursors, a refreshed access token, and the quota stop if there was one."""
    token = run.api.refreshed_token()
    if token and token != access_token:
        registry.store_access_token(cipher, connection, token)
    registry.save_state(connection.connection_id, run.state)
    if run.stopped:
        registry.mark_erroring(connection.connection_id, QUOTA_STATUS)
