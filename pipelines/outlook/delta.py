"""Graph delta rounds: the whole collection the first time, then only what changed since the stored link.

A round follows `@odata.nextLink` pages to the `@odata.deltaLink`, which is stored (relative to the API's
origin) once the round's rows are loaded. `@removed` items delete their row. An expired link answers 410
(`syncStateNotFound`): the collection is listed again from scratch and rows held but not listed are deleted,
so a resync neither duplicates nor keeps stale rows.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator

import pyarrow as pa
from kiota_abstractions.api_error import APIError

from pipelines.mail_common.session import SyncSession
from pipelines.mail_common.stage import StreamWriter
from pipelines.outlook.client import GraphPages
from pipelines.outlook.rows import contact_row, message_row
from pipelines.outlook.settings import CONTACTS, FOLDERS, MESSAGES

STATE_KEY = "delta_links"


def sync_messages(session: SyncSession, pages: GraphPages) -> Iterator[pa.Table]:
    writer = session.writer(MESSAGES)
    for folder in FOLDERS:
        yield from _round(session, pages, writer, folder, pages.folder_delta(folder),
                          lambda item, folder=folder: message_row(item, folder))


def sync_contacts(session: SyncSession, pages: GraphPages) -> Iterator[pa.Table]:
    yield from _round(session, pages, session.writer(CONTACTS), "contacts", pages.contacts_delta(), contact_row)


def _round(session: SyncSession, pages: GraphPages, writer: StreamWriter, name: str, builder: Any,
           to_row: Callable[[dict[str, Any]], dict[str, Any]]) -> Iterator[pa.Table]:
    links: dict[str, str] = session.state.setdefault(STATE_KEY, {})
    link = links.get(name)
    try:
        page = pages.page(builder, link)
    except APIError as exc:
        if exc.response_status_code != 410 or link is None:
            raise
        writer.counts.cursor_expired = True
        link, page = None, pages.page(builder, None)
    full = link is None
    writer.counts.full_resync = writer.counts.full_resync or full
    seen: set[str] = set()
    while True:
        items = page.get("value", [])
        present = [i for i in items if "@removed" not in i]
        seen.update(i["id"] for i in present)
        yield from writer.upsert(to_row(i) for i in present)
        yield from writer.delete(i["id"] for i in items if "@removed" in i)
        if "@odata.nextLink" not in page:
            break
        page = pages.page(builder, pages.relative(page["@odata.nextLink"]))
    if full:
        yield from writer.delete_missing(seen, scope=name if writer.stream.scope else None)
    links[name] = pages.relative(page["@odata.deltaLink"])



