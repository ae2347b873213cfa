"""The Outlook source: one connected Microsoft account's Inbox and Sent Items messages and its contacts
(Microsoft Graph delta queries through msgraph-sdk) into `raw_outlook`, personal columns encrypted before
dlt sees them, incrementally from the stored delta links.

Plain dlt, no Dagster: `outlook_source(session)` yields the two tables of one connection (merge on
(connection_id, id), `@removed` as hard deletes). `python -m pipelines.outlook` runs it against the sandbox.
"""

from __future__ import annotations

from typing import Callable, Iterator

import dlt
import pyarrow as pa

from pipelines.mail_common.session import SyncSession
from pipelines.mail_common.stage import stream_resource
from pipelines.outlook.client import GraphPages
from pipelines.outlook.delta import sync_contacts, sync_messages
from pipelines.outlook.settings import CONTACTS, DATASET_NAME, MESSAGES, SOURCE_NAME

__all__ = ["DATASET_NAME", "SOURCE_NAME", "outlook_source"]


@dlt.source(name=SOURCE_NAME, max_table_nesting=0)
def outlook_source(session: SyncSession | None):
    """Messages and contacts of the session's connection (`None` only declares the tables, for Dagster)."""

    def paged(sync) -> Callable[[], Iterator[pa.Table]]:
        """A resource body running `sync` with its own Graph client (closed when the resource ends)."""
        def body() -> Iterator[pa.Table]:
            pages = GraphPages(session)
            try:
                yield from sync(session, pages)
            finally:
                pages.close()
        return body

    messages, contacts = paged(sync_messages), paged(sync_contacts)

    return [stream_resource(messages, MESSAGES), stream_resource(contacts, CONTACTS)]
