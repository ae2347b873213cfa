"""The Gmail source: one connected Google account's messages (Gmail API) and contacts (People API) into
`raw_gmail`, personal columns encrypted before dlt sees them, incrementally after the first sync.

Plain dlt, no Dagster: `gmail_source(session)` yields the two tables of one connection (merge on
(connection_id, id), deletions as hard deletes); `sync(...)` runs it for one connection with plain dlt and
saves the new cursors once loaded. `python -m pipelines.gmail` runs it against the sandbox.
"""

from __future__ import annotations

from typing import Iterator

import dlt
import pyarrow as pa

from pipelines.gmail.client import google_clients
from pipelines.gmail.contacts import sync_contacts
from pipelines.gmail.messages import sync_messages
from pipelines.gmail.settings import CONTACTS, DATASET_NAME, MESSAGES, SOURCE_NAME
from pipelines.mail_common.session import SyncSession
from pipelines.mail_common.stage import stream_resource

__all__ = ["DATASET_NAME", "SOURCE_NAME", "gmail_source"]


@dlt.source(name=SOURCE_NAME, max_table_nesting=0)
def gmail_source(session: SyncSession | None):
    """Messages and contacts of the session's connection (`None` only declares the tables, for Dagster)."""
    clients: list = []

    def google():
        if not clients:
            clients.append(google_clients(session))
        return clients[0]

    def messages() -> Iterator[pa.Table]:
        yield from sync_messages(session, google())

    def contacts() -> Iterator[pa.Table]:
        yield from sync_contacts(session, google())
        token = google().http.credentials.token
        if token and token != session.tokens.access_token:
            session.refreshed_access_token = token  # refreshed by the SDK: keep it (encrypted) for next time

    return [stream_resource(messages, MESSAGES), stream_resource(contacts, CONTACTS)]
