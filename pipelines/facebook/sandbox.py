"""The sandbox default for Meta: the seeded ad accounts served by the local Graph API server, and the
connections two workspaces made to them (GTG_ENV=sandbox only: `make run`, `dagster dev`, the tests).

The world is seeded, so a sync in a later process meets the same accounts; its clock is the real one, so
each account's "today" moves on as it would at Meta.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Iterator

from pipelines.connections.registry import Connection, ConnectionRegistry
from pipelines.facebook.client import GraphEndpoint
from pipelines.facebook.settings import PROVIDER
from pipelines.sandbox.facebook import FacebookServer, World, build_world

SANDBOX_SEED = 7
# (workspace, sandbox ad account index): the west-of-UTC and the JPY account in one workspace, EUR in another.
SANDBOX_CONNECTIONS: tuple[tuple[str, int], ...] = (("ws_0001", 0), ("ws_0001", 1), ("ws_0002", 2))


def sandbox_world(days: int | None = None) -> World:
    """The sandbox ad accounts (GTG_SANDBOX_FACEBOOK_DAYS days of insights each, default 60)."""
    days = days if days is not None else int(os.environ.get("GTG_SANDBOX_FACEBOOK_DAYS", "60"))
    return build_world(SANDBOX_SEED, days=days)


def sandbox_connection_id(workspace_id: str, index: int) -> str:
    return f"{workspace_id}-{PROVIDER}-{index}"


@contextmanager
def running_sandbox(world: World) -> Iterator[GraphEndpoint]:
    """The Graph API sandbox on a free port of 127.0.0.1 for the duration of the block."""
    with FacebookServer(world) as server:
        yield GraphEndpoint(server.url)


def seed_connections(registry: ConnectionRegistry, cipher, world: World,
                     plan: tuple[tuple[str, int], ...] = SANDBOX_CONNECTIONS) -> list[Connection]:
    """Register the sandbox connections not registered yet (a revoked one stays revoked)."""
    known = {c.connection_id for c in registry.list(PROVIDER, statuses=("active", "erroring", "needs_reauth", "revoked"))}
    for workspace_id, index in plan:
        connection_id = sandbox_connection_id(workspace_id, index)
        if connection_id not in known:
            account = world.accounts[index]
            registry.add(cipher, workspace_id, PROVIDER, account.id, refresh_token=None, access_token=account.token,
                         sandbox=True, connection_id=connection_id)
    return registry.list(PROVIDER)
