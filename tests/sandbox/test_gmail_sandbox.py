"""google-api-python-client against the Gmail and People sandbox, over real HTTP: listing, getting, batching,
incremental sync after mutations, expired cursors, and faults the SDK must retry through."""

from __future__ import annotations

import base64
import email
import email.policy
from typing import Any

import pytest
from google.auth.exceptions import RefreshError
from googleapiclient.errors import HttpError
from googleapiclient.http import BatchHttpRequest

from pipelines.sandbox.mail import Account, FaultKind, GoogleServer
from pipelines.sandbox.mail.mailbox import iter_messages
from tests.sandbox.mail_clients import google_service


def list_all(gmail: Any, **kwargs: Any) -> list[str]:
    """Every message id, following pages with the SDK's own list_next."""
    ids: list[str] = []
    request = gmail.users().messages().list(userId="me", **kwargs)
    while request is not None:
        response = request.execute(num_retries=3)
        ids += [m["id"] for m in response.get("messages", [])]
        request = gmail.users().messages().list_next(request, response)
    return ids


def history(gmail: Any, start: str, **kwargs: Any) -> tuple[list[dict[str, Any]], str]:
    """All history records after `start`, paged by hand (list_next breaks on repeated historyTypes)."""
    records: list[dict[str, Any]] = []
    token = None
    while True:
        page = gmail.users().history().list(userId="me", startHistoryId=start, pageToken=token, **kwargs).execute()
        records += page.get("history", [])
        token = page.get("nextPageToken")
        if not token:
            return records, page["historyId"]


def ids_of(records: list[dict[str, Any]], kind: str) -> list[str]:
    return [entry["message"]["id"] for record in records for entry in record.get(kind, [])]


def test_lists_every_message_newest_first_over_several_pages(google: GoogleServer, accounts: list[Account]) -> None:
    account = accounts[0]
    gmail = google_service(google, account)
    ids = list_all(gmail, maxResults=250)
    assert ids == [m.id for m in iter_messages(account)]
    assert len(ids) == 1200 and google.http_requests["gmail.users.messages.list"] == 5
    profile = gmail.users().getProfile(userId="me").execute()
    assert profile == {"emailAddress": account.email, "messagesTotal": 1200,
                       "threadsTotal": len({m.thread_id for m in account.messages.values()}),
                       "historyId": str(account.history_id)}
    # Another account's token sees its own mailbox only.
    other = list_all(google_service(google, accounts[1]), maxResults=500)
    assert set(other) == set(accounts[1].messages) and not set(other) & set(ids)


def test_label_and_query_filters(google: GoogleServer, accounts: list[Account]) -> None:
    account = accounts[0]
    gmail = google_service(google, account)
    inbox_unread = [m.id for m in iter_messages(account) if {"INBOX", "UNREAD"} <= m.labels]
    page = gmail.users().messages().list(userId="me", labelIds=["INBOX", "UNREAD"], maxResults=500).execute()
    assert [m["id"] for m in page["messages"]] == inbox_unread and page["resultSizeEstimate"] == len(inbox_unread)
    newest = max(m.internal_date for m in account.messages.values())
    after = (newest // 1000) - 30 * 86_400
    recent = [m.id for m in iter_messages(account) if m.internal_date >= after * 1000 and "Label_1" in m.labels]
    found = list_all(gmail, q=f"after:{after} label:clients", maxResults=7)
    assert found == recent and recent


def test_get_full_metadata_minimal_and_raw(google: GoogleServer, accounts: list[Account]) -> None:
    account = accounts[0]
    gmail = google_service(google, account)
    plain = next(m for m in iter_messages(account) if not m.html and m.cc)
    rich = next(m for m in iter_messages(account) if m.html)

    full = gmail.users().messages().get(userId="me", id=plain.id).execute()
    headers = {h["name"]: h["value"] for h in full["payload"]["headers"]}
    assert full["threadId"] == plain.thread_id and full["labelIds"] == sorted(plain.labels)
    assert full["internalDate"] == str(plain.internal_date) and full["sizeEstimate"] == plain.size_estimate
    assert headers["Subject"] == plain.subject and headers["From"] == plain.sender.header()
    assert headers["Cc"] == plain.cc[0].header() and email.utils.parsedate_to_datetime(headers["Date"])
    assert base64.urlsafe_b64decode(full["payload"]["body"]["data"]).decode() == plain.text

    full = gmail.users().messages().get(userId="me", id=rich.id, format="full").execute()
    parts = full["payload"]["parts"]
    assert full["payload"]["mimeType"] == "multipart/alternative"
    assert [p["mimeType"] for p in parts] == ["text/plain", "text/html"]
    assert [base64.urlsafe_b64decode(p["body"]["data"]).decode() for p in parts] == [rich.text, rich.html]

    meta = gmail.users().messages().get(userId="me", id=rich.id, format="metadata",
                                        metadataHeaders=["From", "Subject"]).execute()
    assert [h["name"] for h in meta["payload"]["headers"]] == ["Subject", "From"] and "parts" not in meta["payload"]
    minimal = gmail.users().messages().get(userId="me", id=rich.id, format="minimal").execute()
    assert "payload" not in minimal and minimal["snippet"]

    raw = gmail.users().messages().get(userId="me", id=rich.id, format="raw").execute()
    parsed = email.message_from_bytes(base64.urlsafe_b64decode(raw["raw"]), policy=email.policy.default)
    assert parsed["Subject"] == rich.subject and parsed["Message-ID"] == rich.message_id_header
    assert parsed.get_body(("plain",)).get_content().replace("\r\n", "\n") == rich.text.replace("\r\n", "\n")
    assert parsed.get_body(("html",)).get_content().strip() == rich.html

    with pytest.raises(HttpError) as missing:
        gmail.users().messages().get(userId="me", id="0000000000000000").execute()
    assert missing.value.status_code == 404 and missing.value.reason == "Requested entity was not found."


def test_batch_of_100_gets_is_one_http_request(google: GoogleServer, accounts: list[Account]) -> None:
    account = accounts[0]
    gmail = google_service(google, account)
    wanted = [m.id for m in iter_messages(account)][:100]
    answers: dict[str, Any] = {}
    errors: list[Exception] = []

    def collect(request_id: str, response: Any, exception: Exception | None) -> None:
        if exception is not None:
            errors.append(exception)
        answers[request_id] = response

    batch = BatchHttpRequest(callback=collect, batch_uri=f"{google.url}/batch/gmail/v1")
    for message_id in wanted:
        batch.add(gmail.users().messages().get(userId="me", id=message_id, format="metadata",
                                               metadataHeaders=["From", "Subject", "Date"]), request_id=message_id)
    google.reset_counts()
    batch.execute()
    assert not errors and sorted(answers) == sorted(wanted)
    assert all(answers[i]["id"] == i for i in wanted)
    assert google.http_requests == {"google.batch": 1}
    assert google.calls == {"google.batch": 1, "gmail.users.messages.get": 100}
    # The batch built from the static discovery document (rootUrl replaced) reaches the sandbox too.
    too_many = BatchHttpRequest(callback=collect, batch_uri=f"{google.url}/batch")
    for message_id in wanted[:3]:
        too_many.add(gmail.users().messages().get(userId="me", id=message_id, format="minimal"))
    too_many.execute()
    assert not errors


def test_batch_parts_can_be_throttled_individually(google: GoogleServer, accounts: list[Account]) -> None:
    gmail = google_service(google, accounts[0])
    wanted = [m.id for m in iter_messages(accounts[0])][:10]
    google.faults.inject(FaultKind.RATE_LIMIT, times=3, endpoint="gmail.users.messages.get", skip=2)
    outcome: dict[str, int] = {}
    batch = BatchHttpRequest(batch_uri=f"{google.url}/batch/gmail/v1", callback=lambda rid, resp, exc: outcome.__setitem__(
        rid, exc.status_code if isinstance(exc, HttpError) else 200))
    for message_id in wanted:
        batch.add(gmail.users().messages().get(userId="me", id=message_id, format="minimal"), request_id=message_id)
    batch.execute()
    assert [outcome[i] for i in wanted] == [200, 200, 429, 429, 429, 200, 200, 200, 200, 200]


def test_history_after_mutations_is_exact(google: GoogleServer, accounts: list[Account]) -> None:
    account = accounts[0]
    gmail = google_service(google, account)
    start = gmail.users().getProfile(userId="me").execute()["historyId"]
    existing = [m.id for m in iter_messages(account)]
    added = [m.id for m in account.add_messages(7)]
    account.delete_messages(existing[:3] + added[:1])
    relabelled = [m.id for m in account.relabel(existing[10:15], add=["Label_2"])]
    archived = [m.id for m in account.relabel([i for i in existing[20:40] if "INBOX" in account.messages[i].labels][:4],
                                              remove=["INBOX"])]
    account.add_contacts(2)  # contact changes take history ids too, but are not Gmail history

    records, latest = history(gmail, start, maxResults=4)
    assert latest == str(account.history_id)
    assert ids_of(records, "messagesAdded") == added
    assert ids_of(records, "messagesDeleted") == existing[:3] + added[:1]
    assert ids_of(records, "labelsAdded") == relabelled
    assert ids_of(records, "labelsRemoved") == archived
    assert all(e["labelIds"] == ["INBOX"] for r in records for e in r.get("labelsRemoved", []))
    assert [int(r["id"]) for r in records] == sorted(int(r["id"]) for r in records)
    assert google.http_requests["gmail.users.history.list"] == 5  # 20 records, 4 per page

    only_deleted, _ = history(gmail, start, historyTypes=["messageDeleted"])
    assert ids_of(only_deleted, "messagesDeleted") == existing[:3] + added[:1]
    assert not ids_of(only_deleted, "messagesAdded") and not ids_of(only_deleted, "labelsAdded")
    up_to_date, same = history(gmail, latest)
    assert up_to_date == [] and same == latest


def test_expired_history_id_is_404(google: GoogleServer, accounts: list[Account]) -> None:
    account = accounts[0]
    gmail = google_service(google, account)
    start = gmail.users().getProfile(userId="me").execute()["historyId"]
    google.faults.inject(FaultKind.EXPIRED_CURSOR, endpoint="gmail.users.history.list")
    with pytest.raises(HttpError) as switched:
        gmail.users().history().list(userId="me", startHistoryId=start).execute()
    assert switched.value.status_code == 404
    assert gmail.users().history().list(userId="me", startHistoryId=start).execute()["historyId"] == start

    account.add_messages(1)
    account.expire_cursors()
    with pytest.raises(HttpError) as expired:
        gmail.users().history().list(userId="me", startHistoryId=start).execute()
    assert expired.value.status_code == 404
    fresh = gmail.users().getProfile(userId="me").execute()["historyId"]  # full resync, then go on from here
    assert gmail.users().history().list(userId="me", startHistoryId=fresh).execute() == {"historyId": fresh}


def test_throttling_and_server_errors_are_retried_by_the_sdk(google: GoogleServer, accounts: list[Account]) -> None:
    account = accounts[0]
    gmail = google_service(google, account)
    google.faults.inject(FaultKind.RATE_LIMIT, endpoint="gmail.users.messages.list", skip=1)
    google.faults.inject(FaultKind.SERVER_ERROR, endpoint="gmail.users.messages.list", skip=3, status=500)
    google.faults.inject(FaultKind.SERVER_ERROR, endpoint="gmail.users.messages.get")
    assert list_all(gmail, maxResults=400) == [m.id for m in iter_messages(account)]
    assert google.faults.fired["rate_limit"] == 1 and google.faults.fired["server_error"] == 1
    assert google.http_requests["gmail.users.messages.list"] == 3 + 2
    newest = next(iter_messages(account))
    assert gmail.users().messages().get(userId="me", id=newest.id).execute(num_retries=2)["id"] == newest.id
    assert google.faults.armed == []

    google.faults.inject(FaultKind.SERVER_ERROR, endpoint="gmail.users.getProfile")
    with pytest.raises(HttpError) as unretried:
        gmail.users().getProfile(userId="me").execute()
    assert unretried.value.status_code == 503


def test_expired_access_token_is_401(google: GoogleServer, accounts: list[Account]) -> None:
    gmail = google_service(google, accounts[0])
    google.faults.inject(FaultKind.EXPIRED_TOKEN)
    with pytest.raises(RefreshError):  # the SDK tries to refresh on 401; these credentials cannot
        gmail.users().getProfile(userId="me").execute()
    assert google.faults.fired["expired_token"] == 1
    unknown = google_service(google, Account(0, 0, "x@y.test", "X", "id", "not-a-token"))
    with pytest.raises(RefreshError):
        unknown.users().getProfile(userId="me").execute()
    assert google.http_requests["gmail.users.getProfile"] == 2


# -- People -----------------------------------------------------------------------------------------------------------


def connections(people: Any, **kwargs: Any) -> tuple[list[dict[str, Any]], str | None]:
    found: list[dict[str, Any]] = []
    token = None
    while True:
        page = people.people().connections().list(
            resourceName="people/me", personFields="names,emailAddresses,phoneNumbers,metadata", pageSize=40,
            requestSyncToken=True, pageToken=token, **kwargs).execute()
        found += page.get("connections", [])
        token = page.get("nextPageToken")
        if not token:
            return found, page.get("nextSyncToken")


def test_people_sync_tokens_show_added_updated_and_deleted_contacts(google: GoogleServer, accounts: list[Account]) -> None:
    account = accounts[0]
    people = google_service(google, account, "people")
    everyone, sync_token = connections(people)
    assert sorted(p["resourceName"] for p in everyone) == sorted(f"people/{i}" for i in account.contacts)
    first = account.contacts[everyone[0]["resourceName"].split("/")[1]]
    assert everyone[0]["names"][0]["displayName"] == first.display_name
    assert everyone[0]["emailAddresses"][0]["value"] == first.emails[0]
    assert sync_token and google.http_requests["people.people.connections.list"] == 4

    existing = list(account.contacts)
    added = account.add_contacts(3)
    updated = account.update_contacts(existing[:2])
    account.delete_contacts(existing[5:7] + [added[0].id])
    changes, next_token = connections(people, syncToken=sync_token)
    assert [p["resourceName"] for p in changes] == [f"people/{i}" for i in
                                                     [c.id for c in added[1:]] + existing[:2] + existing[5:7]]
    deleted = [p for p in changes if p.get("metadata", {}).get("deleted")]
    assert [p["resourceName"] for p in deleted] == [f"people/{i}" for i in existing[5:7]]
    phone = next(p for p in changes if p["resourceName"] == f"people/{updated[0].id}")["phoneNumbers"][0]
    assert phone["canonicalForm"] == updated[0].phones[0][0]
    assert connections(people, syncToken=next_token) == ([], next_token)

    google.faults.inject(FaultKind.EXPIRED_CURSOR, endpoint="people.people.connections.list")
    with pytest.raises(HttpError) as expired:
        connections(people, syncToken=next_token)
    assert expired.value.status_code == 400
    assert expired.value.error_details[0]["reason"] == "EXPIRED_SYNC_TOKEN"
    account.expire_cursors()
    with pytest.raises(HttpError):
        connections(people, syncToken=next_token)
    assert len(connections(people)[0]) == len(account.contacts)


def test_people_requires_person_fields(google: GoogleServer, accounts: list[Account]) -> None:
    people = google_service(google, accounts[0], "people")
    with pytest.raises(HttpError) as missing:
        people.people().connections().list(resourceName="people/me", personFields="").execute()
    assert missing.value.status_code == 400
