"""Disconnecting an account: the registry forgets its tokens at once, and the privacy engine erases its data.

No provider-specific deletion here: the connection becomes an ordinary erasure request (identity kind
`connection`) in the request inbox, processed like every other request — rows found through the declared
connection column, deleted, keys of people no row needs any more destroyed, an audit entry written. Google's
user-data policy asks exactly this on disconnect or revocation (`[terms.google_user_data]`).
"""

from __future__ import annotations

from pipelines.connections.registry import ConnectionRegistry
from pipelines.privacy.requests import Inbox, Request


def disconnect(registry: ConnectionRegistry, inbox: Inbox, connection_id: str, *, requested_by: str,
               source: str = "disconnect") -> str:
    """Revoke the connection and file the erasure of its data; returns the request id."""
    connection = registry.revoke(connection_id)
    return inbox.submit(Request(request_type="erasure", workspace_id=connection.workspace_id,
                                identity_kind="connection", identity_value=connection_id, source=source,
                                requested_by=requested_by))
