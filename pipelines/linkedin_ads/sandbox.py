"""The sandbox default: the seeded LinkedIn Ads sandbox and the connections two workspaces made to it.

Used only with GTG_ENV=sandbox, so `python -m cli run`, `dagster dev` and `python -m pipelines.linkedin_ads`
sync LinkedIn Ads on a fresh machine. The data is deterministic (seeded), so a later process serves the same
accounts and figures.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from pipelines.connections.registry import ConnectionRegistry
from pipelines.sandbox.linkedin_ads import AdsData, LinkedInAdsServer, build_data

SANDBOX_SEED = 7
# (workspace, sandbox member index): ws_0001's member reads the US and European accounts, ws_0002's the Japanese.
SANDBOX_CONNECTIONS: tuple[tuple[str, int], ...] = (("ws_0001", 0), ("ws_0002", 1))


def sandbox_data() -> AdsData:
    return build_data(SANDBOX_SEED)


def sandbox_connection_id(workspace_id: str, index: int) -> str:
    return f"{workspace_id}-linkedin_ads-{index}"


@contextmanager
def running_sandbox(data: AdsData | None = None) -> Iterator[str]:
    """The sandbox on a free port of 127.0.0.1 for the block; yields its `/rest` base URL."""
    with LinkedInAdsServer(data or sandbox_data()) as server:
        yield f"{server.url}/rest"


def seed_connections(registry: ConnectionRegistry, cipher, data: AdsData | None = None) -> None:
    """Register the sandbox connections not registered yet (a revoked one stays revoked)."""
    data = data or sandbox_data()
    known = {c.connection_id for c in registry.list(statuses=("active", "erroring", "needs_reauth", "revoked"))}
    for workspace_id, index in SANDBOX_CONNECTIONS:
        connection_id = sandbox_connection_id(workspace_id, index)
        if connection_id not in known:
            member = data.members[index]
            registry.add(cipher, workspace_id, "linkedin_ads", f"member-{index}", refresh_token=None,
                         access_token=member.token, sandbox=True, connection_id=connection_id)
