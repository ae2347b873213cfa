"""The sandbox default for Google Ads: the gRPC sandbox's advertisers and the connections two workspaces made
to them (GTG_ENV=sandbox only, so `python -m cli run` and `dagster dev` sync Google Ads on a fresh machine).

ws_0001 connected the manager account (its three clients are synced through it); ws_0002 connected the Tokyo
client directly (its own id as login customer). The world is seeded and deterministic and follows the real
clock, so a later process serves the same numbers.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from pipelines.connections.registry import STATUSES, ConnectionRegistry
from pipelines.google_ads.connect import GoogleAdsApp
from pipelines.google_ads.settings import PROVIDER

HISTORY_DAYS = 30
# (workspace, login customer id, connection index)
SANDBOX_CONNECTIONS: tuple[tuple[str, str, int], ...] = (("ws_0001", "9990001111", 0), ("ws_0002", "1000000003", 1))


def sandbox_app() -> GoogleAdsApp:
    from pipelines.sandbox.google_ads import DEVELOPER_TOKEN

    return GoogleAdsApp(developer_token=DEVELOPER_TOKEN)


@contextmanager
def running_sandbox() -> Iterator[str]:
    """The sandbox server on a free port of 127.0.0.1 for the block; yields its endpoint."""
    from pipelines.sandbox.google_ads import GoogleAdsSandbox, build_world

    with GoogleAdsSandbox(build_world(history_days=HISTORY_DAYS)) as sandbox:
        yield sandbox.endpoint


def seed_connections(registry: ConnectionRegistry, cipher) -> None:
    """Register the sandbox connections not registered yet (a revoked one stays revoked)."""
    from pipelines.sandbox.google_ads import ACCESS_TOKEN

    known = {c.connection_id for c in registry.list(statuses=STATUSES)}
    for workspace_id, login_customer_id, index in SANDBOX_CONNECTIONS:
        connection_id = f"{workspace_id}-{PROVIDER}-{index}"
        if connection_id not in known:
            registry.add(cipher, workspace_id, PROVIDER, login_customer_id, refresh_token=None,
                         access_token=ACCESS_TOKEN, sandbox=True, connection_id=connection_id)
