"""The sandbox default: seeded mail accounts served by the local Gmail / People and Graph servers, and the
connections several workspaces made to them.

Used only with GTG_ENV=sandbox, so `python -m cli run` and `dagster dev`
sync mail on a fresh machine. The accounts are deterministic (seeded), so a sync in a later process sees the
same mailboxes, history ids and sync tokens as the one before: incremental syncs find nothing new.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Iterator

from pipelines.connections.registry import STATUSES, Connection, ConnectionRegistry
from pipelines.mail_common.endpoints import Endpoints
from pipelines.sandbox.mail import Account, GoogleServer, GraphServer, build_accounts

SANDBOX_SEED = 7
# (workspace, provider, sandbox account index): three workspaces, five connections.
SANDBOX_CONNECTIONS: tuple[tuple[str, str, int], ...] = (
    ("ws_0001", "gmail", 0), ("ws_0001", "outlook", 1), ("ws_0002", "gmail", 2), ("ws_0002", "outlook", 3),
    ("ws_0003", "gmail", 4),
)


def sandbox_accounts(messages: int | None = None, contacts: int | None = None) -> list[Account]:
    """The sandbox accounts (GTG_SANDBOX_MAIL_MESSAGES / GTG_SANDBOX_MAIL_CONTACTS per account)."""
    messages = messages if messages is not None else int(os.environ.get("GTG_SANDBOX_MAIL_MESSAGES", "400"))
    contacts = contacts if contacts is not None else int(os.environ.get("GTG_SANDBOX_MAIL_CONTACTS", "80"))
    count = max(index for _, _, index in SANDBOX_CONNECTIONS) + 1
    return build_accounts(count, messages, contacts, SANDBOX_SEED)


def sandbox_connection_id(workspace_id: str, provider: str, index: int) -> str:
    return f"{workspace_id}-{provider}-{index}"


@contextmanager
def running_sandbox(accounts: list[Account]) -> Iterator[Endpoints]:
    """Both servers on free ports of 127.0.0.1 for the duration of the block."""
    with GoogleServer(accounts) as google, GraphServer(accounts) as graph:
        yield Endpoints(google_api=google.url, google_batch=f"{google.url}/batch/gmail/v1", graph=f"{graph.url}/v1.0")


def seed_connections(registry: ConnectionRegistry, cipher, accounts: list[Account],
                     plan: tuple[tuple[str, str, int], ...] = SANDBOX_CONNECTIONS) -> list[Connection]:
    """Register the sandbox connections not registered yet (a revoked one stays revoked)."""
    known = {c.connection_id for c in registry.list(statuses=STATUSES)}
    for workspace_id, provider, index in plan:
        connection_id = sandbox_connection_id(workspace_id, provider, index)
        if connection_id not in known:
            account = accounts[index]
            registry.add(cipher, workspace_id, provider, account.email, refresh_token=None,
                         access_token=account.token, sandbox=True, connection_id=connection_id)
    return registry.list()
