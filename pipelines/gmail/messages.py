"""Gmail messages: a full listing the first time (or when the history id expired), `history.list` after.

Full sync: the profile (whose history id the next sync starts from) and the first page of ids travel in one
batch, then each page of 500 ids is fetched in batches of 100 `messages.get(format=full)`: about 12 HTTP
requests per 1,000 messages where one get per message would take over 1,000. Rows held for the connection
but no longer listed are deleted, so a resync never duplicates nor keeps stale rows.
Incremental sync: every history page from the stored id; deleted messages are deleted, added and relabelled
ones are fetched again in batches (a merge replaces whole rows), a 404 on fetch means deleted meanwhile.
"""

from __future__ import annotations

import base64
import datetime as dt
import email.utils
import html
import json
from typing import Any, Iterator

import pyarrow as pa
from googleapiclient.errors import HttpError

from pipelines.gmail.client import GoogleClients
from pipelines.gmail.settings import HISTORY_PAGE_SIZE, LIST_PAGE_SIZE, MESSAGES
from pipelines.mail_common.columns import address, correspondent, parse_addresses
from pipelines.mail_common.recipients import RECIPIENTS_FIELD, recipient_rows
from pipelines.mail_common.session import SyncSession
from pipelines.mail_common.stage import StreamWriter

STATE_KEY = "history_id"
_HISTORY_CHANGES = ("messagesAdded", "labelsAdded", "labelsRemoved")


def sync_messages(session: SyncSession, google: GoogleClients) -> Iterator[pa.Table]:
    writer = session.writer(MESSAGES)
    start = session.state.get(STATE_KEY)
    if start:
        try:
            deleted, changed, latest = _history(google, start)
        except HttpError as exc:
            if exc.status_code != 404:
                raise
            writer.counts.cursor_expired = True  # expired history id: Gmail wants a full resync
        else:
            yield from _fetched(google, writer, [i for i in changed if i not in deleted], deleted)
            session.state[STATE_KEY] = latest
            return
    writer.counts.full_resync = True
    yield from _full(session, google, writer)


def _full(session: SyncSession, google: GoogleClients, writer: StreamWriter) -> Iterator[pa.Table]:
    users = google.gmail.users()
    first = google.batch({
        "profile": lambda: users.getProfile(userId="me"),
        "page": lambda: users.messages().list(userId="me", maxResults=LIST_PAGE_SIZE, includeSpamTrash=False),
    }, missing_ok=False)
    history_id, page = first["profile"]["historyId"], first["page"]
    seen: set[str] = set()
    while True:
        ids = [m["id"] for m in page.get("messages", [])]
        seen.update(ids)
        yield from _fetched(google, writer, ids)
        token = page.get("nextPageToken")
        if not token:
            break
        page = google.call(lambda: users.messages().list(userId="me", maxResults=LIST_PAGE_SIZE, pageToken=token))
    yield from writer.delete_missing(seen)
    session.state[STATE_KEY] = history_id


def _history(google: GoogleClients, start: str) -> tuple[set[str], dict[str, None], str]:
    """Deleted ids, changed ids (in order) and the latest history id; pages by hand (PROVIDERS.md)."""
    history = google.gmail.users().history()
    deleted: set[str] = set()
    changed: dict[str, None] = {}
    token = None
    while True:
        page = google.call(lambda: history.list(userId="me", startHistoryId=start, maxResults=HISTORY_PAGE_SIZE,
                                                pageToken=token))
        for record in page.get("history", []):
            for entry in record.get("messagesDeleted", []):
                deleted.add(entry["message"]["id"])
            for kind in _HISTORY_CHANGES:
                for entry in record.get(kind, []):
                    changed[entry["message"]["id"]] = None
        token = page.get("nextPageToken")
        if not token:
            return deleted, changed, page["historyId"]


def _fetched(google: GoogleClients, writer: StreamWriter, ids: list[str],
             deleted: set[str] | None = None) -> Iterator[pa.Table]:
    """Fetch `ids` in batches and upsert them; ids gone meanwhile join `deleted`, which are then deleted."""
    messages = google.gmail.users().messages()
    answers = google.batch({i: (lambda i=i: messages.get(userId="me", id=i, format="full")) for i in ids})
    gone = set(deleted or ()) | {i for i, answer in answers.items() if answer is None}
    yield from writer.upsert(message_row(a) for a in answers.values() if a is not None)
    yield from writer.delete(gone)


def message_row(message: dict[str, Any]) -> dict[str, Any]:
    """A Gmail message resource (format=full) as a plaintext row of `gmail_messages`, its recipients'
    rows under RECIPIENTS_FIELD."""
    payload = message.get("payload", {})
    headers = {h["name"].lower(): h["value"] for h in payload.get("headers", [])}
    sender_name, sender = email.utils.parseaddr(headers.get("from", ""))
    to, cc, bcc = (parse_addresses(headers.get(h)) for h in ("to", "cc", "bcc"))
    labels = sorted(message.get("labelIds", []))
    outgoing = "SENT" in labels
    return {
        "message_id": message["id"], "thread_id": message.get("threadId"), "label_ids": json.dumps(labels),
        "history_id": int(message["historyId"]) if message.get("historyId") else None,
        "received_at": dt.datetime.fromtimestamp(int(message["internalDate"]) / 1000, dt.timezone.utc),
        "sent_at": _date(headers.get("date")), "size_bytes": message.get("sizeEstimate"), "outgoing": outgoing,
        "correspondent": correspondent(outgoing, address(sender), [a for _, a in to]),
        "from_name": sender_name or None, "from_address": address(sender),
        RECIPIENTS_FIELD: recipient_rows(to=(a for _, a in to), cc=(a for _, a in cc), bcc=(a for _, a in bcc)),
        "subject": headers.get("subject"), "snippet": html.unescape(message.get("snippet") or "") or None,
        "body_text": _plain_text(payload),
    }


def _date(value: str | None) -> dt.datetime | None:
    try:
        return email.utils.parsedate_to_datetime(value).astimezone(dt.timezone.utc) if value else None
    except (TypeError, ValueError):
        return None


def _plain_text(part: dict[str, Any]) -> str | None:
    """The first text/plain part's content, depth first."""
    if part.get("mimeType") == "text/plain" and part.get("body", {}).get("data"):
        return base64.urlsafe_b64decode(part["body"]["data"]).decode("utf-8", errors="replace")
    for child in part.get("parts", []):
        found = _plain_text(child)
        if found is not None:
            return found
    return None
