"""Google contacts through the People API: a full listing with a sync token, then only what changed.

An expired sync token (400 FAILED_PRECONDITION, reason EXPIRED_SYNC_TOKEN) means a full listing again;
contacts held but not listed then are deleted. A deleted contact arrives with `metadata.deleted`.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any, Iterator

import pyarrow as pa
from googleapiclient.errors import HttpError

from pipelines.gmail.client import GoogleClients, error_reason
from pipelines.gmail.settings import CONTACTS, PEOPLE_PAGE_SIZE, PERSON_FIELDS
from pipelines.mail_common.columns import address, phone
from pipelines.mail_common.session import SyncSession

STATE_KEY = "people_sync_token"


def sync_contacts(session: SyncSession, google: GoogleClients) -> Iterator[pa.Table]:
    writer = session.writer(CONTACTS)
    token = session.state.get(STATE_KEY)
    if token:
        try:
            people, next_token = _pages(google, token)
        except HttpError as exc:
            if error_reason(exc) != "EXPIRED_SYNC_TOKEN" and exc.status_code != 410:
                raise
            writer.counts.cursor_expired = True
        else:
            removed = [p["resourceName"] for p in people if p.get("metadata", {}).get("deleted")]
            yield from writer.upsert(contact_row(p) for p in people if not p.get("metadata", {}).get("deleted"))
            yield from writer.delete(removed)
            session.state[STATE_KEY] = next_token
            return
    writer.counts.full_resync = True
    people, next_token = _pages(google, None)
    yield from writer.upsert(contact_row(p) for p in people)
    yield from writer.delete_missing({p["resourceName"] for p in people})
    session.state[STATE_KEY] = next_token


def _pages(google: GoogleClients, sync_token: str | None) -> tuple[list[dict[str, Any]], str]:
    """Every connection of one round (all of them, or what changed since `sync_token`) and the next token."""
    connections = google.people.people().connections()
    found: list[dict[str, Any]] = []
    page_token = None
    while True:
        page = google.call(lambda: connections.list(
            resourceName="people/me", personFields=PERSON_FIELDS, pageSize=PEOPLE_PAGE_SIZE, requestSyncToken=True,
            pageToken=page_token, syncToken=sync_token))
        found += page.get("connections", [])
        page_token = page.get("nextPageToken")
        if not page_token:
            return found, page["nextSyncToken"]


def contact_row(person: dict[str, Any]) -> dict[str, Any]:
    """A People `person` as a plaintext row of `gmail_contacts`."""
    name = (person.get("names") or [{}])[0]
    emails = [address(e.get("value")) for e in person.get("emailAddresses", []) if e.get("value")]
    phones = [phone(p.get("canonicalForm") or p.get("value")) for p in person.get("phoneNumbers", [])]
    sources = person.get("metadata", {}).get("sources", [])
    updated = next((s["updateTime"] for s in sources if s.get("updateTime")), None)
    return {
        "contact_id": person["resourceName"], "etag": person.get("etag"),
        "updated_at": dt.datetime.fromisoformat(updated.replace("Z", "+00:00")) if updated else None,
        "display_name": name.get("displayName"), "given_name": name.get("givenName"),
        "family_name": name.get("familyName"),
        "primary_email": emails[0] if emails else None, "emails": json.dumps(emails) if emails else None,
        "primary_phone": phones[0] if phones else None, "phones": json.dumps(phones) if phones else None,
        "company": next((o.get("name") for o in person.get("organizations", []) if o.get("name")), None),
    }
