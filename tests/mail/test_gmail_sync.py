"""The Gmail source with google-api-python-client against the sandbox: exact full and incremental syncs,
batching, expired cursors and every fault switch."""

from __future__ import annotations

import pytest

from pipelines.sandbox.mail import FaultKind
from tests.mail.conftest import GMAIL, GMAIL_2, MailPlatform, labels_of

MESSAGES, CONTACTS = "raw_gmail.gmail_messages", "raw_gmail.gmail_contacts"


def assert_exact(mail: MailPlatform, connection_id: str, index: int) -> None:
    """The warehouse holds exactly the account's mailbox and address book: ids, labels, no duplicates."""
    account = mail.accounts[index]
    assert labels_of(mail, connection_id) == {m.id: sorted(m.labels) for m in account.messages.values()}
    rows = mail.query(f"SELECT count(*), count(DISTINCT message_id) FROM {MESSAGES} WHERE connection_id = ?",
                      [connection_id])[0]
    assert rows == (len(account.messages), len(account.messages))
    contacts = [r[0] for r in mail.held(CONTACTS, connection_id, "contact_id")]
    assert contacts == sorted(f"people/{c}" for c in account.contacts)


def test_full_then_incremental_sync_is_exact(mail: MailPlatform) -> None:
    account = mail.accounts[0]
    report = mail.sync(GMAIL)
    assert_exact(mail, GMAIL, 0)
    counts = report.streams["gmail_messages"]
    assert (counts.inserted, counts.updated, counts.deleted, counts.full_resync) == (250, 0, 0, True)
    assert report.streams["gmail_contacts"].inserted == 40
    # profile + first page in one batch, 3 batches of gets, 1 People page
    assert report.http_requests == 5 and mail.google.http_requests["google.batch"] == 4
    subjects = mail.decrypted(MESSAGES, GMAIL, "subject")
    bodies = mail.decrypted(MESSAGES, GMAIL, "body_text")
    assert all(subjects[m.id] == m.subject and bodies[m.id] == m.text for m in account.messages.values())
    senders = mail.decrypted(MESSAGES, GMAIL, "from_address")
    assert all(senders[m.id] == m.sender.email.lower() for m in account.messages.values())

    existing = list(account.messages)
    added = [m.id for m in account.add_messages(7)]
    account.delete_messages(existing[:3] + added[:1])
    relabelled = account.relabel(existing[10:15], add=["Label_2"])
    contacts = list(account.contacts)
    account.add_contacts(3)
    account.update_contacts(contacts[:2])
    account.delete_contacts(contacts[5:7])
    mail.google.reset_counts()
    report = mail.sync(GMAIL)
    assert_exact(mail, GMAIL, 0)
    counts = report.streams["gmail_messages"]
    assert (counts.inserted, counts.updated, counts.deleted, counts.full_resync) == (6, len(relabelled), 3, False)
    people = report.streams["gmail_contacts"]
    assert (people.inserted, people.updated, people.deleted, people.full_resync) == (3, 2, 2, False)
    phones = mail.decrypted(CONTACTS, GMAIL, "primary_phone", key="contact_id")
    assert phones[f"people/{contacts[0]}"] == account.contacts[contacts[0]].phones[0][0]
    assert mail.google.http_requests == {"gmail.users.history.list": 1, "google.batch": 1,
                                         "people.people.connections.list": 1}
    assert labels_of(mail, GMAIL_2) == {}  # another connection's rows are untouched (never synced)


def test_expired_history_id_and_sync_token_resync_without_duplicates(mail: MailPlatform) -> None:
    account = mail.accounts[0]
    mail.sync(GMAIL)
    existing = list(account.messages)
    account.delete_messages(existing[:4])
    account.add_messages(2)
    account.delete_contacts(list(account.contacts)[:3])
    account.expire_cursors()
    report = mail.sync(GMAIL)
    for stream in ("gmail_messages", "gmail_contacts"):
        assert report.streams[stream].cursor_expired and report.streams[stream].full_resync
    assert report.streams["gmail_messages"].deleted == 4 and report.streams["gmail_contacts"].deleted == 3
    assert report.streams["gmail_messages"].inserted == 2
    assert_exact(mail, GMAIL, 0)
    assert mail.sync(GMAIL).streams["gmail_messages"].full_resync is False  # the new cursors work


FAULTS = [
    (FaultKind.RATE_LIMIT, "gmail.users.messages.get", 3, {}),
    (FaultKind.SERVER_ERROR, "gmail.users.messages.get", 2, {}),
    (FaultKind.SERVER_ERROR, "google.batch", 2, {"status": 500}),
    (FaultKind.RATE_LIMIT, "gmail.users.history.list", 1, {}),
    (FaultKind.SERVER_ERROR, "people.people.connections.list", 2, {"status": 502}),
    (FaultKind.DROP, "google.batch", 2, {}),
    (FaultKind.TRUNCATE, "google.batch", 1, {}),
    (FaultKind.TRUNCATE, "gmail.users.history.list", 1, {}),
    (FaultKind.SLOW, "google.batch", 1, {"delay": 0.2}),
]


@pytest.mark.parametrize("kind, endpoint, times, options", FAULTS,
                         ids=[f"{k.value}-{e}" for k, e, _, _ in FAULTS])
def test_faults_end_with_the_exact_mailbox(mail: MailPlatform, kind, endpoint, times, options) -> None:
    account = mail.accounts[0]
    first = endpoint != "gmail.users.history.list"
    if first:
        mail.google.faults.inject(kind, times=times, endpoint=endpoint, skip=1, **options)
    report = mail.sync(GMAIL)
    account.add_messages(5)
    account.delete_messages(list(account.messages)[:2])
    account.relabel(list(account.messages)[5:8], add=["STARRED"])
    if not first:
        mail.google.faults.inject(kind, times=times, endpoint=endpoint, **options)
    report = mail.sync(GMAIL)
    assert mail.google.faults.fired[kind.value] == times and mail.google.faults.armed == []
    assert_exact(mail, GMAIL, 0)
    if kind is not FaultKind.SLOW and (kind is not FaultKind.DROP):
        assert report.retries >= (1 if not first else 0)


def test_expired_access_token_marks_the_connection_erroring_then_recovers(mail: MailPlatform) -> None:
    mail.google.faults.inject(FaultKind.EXPIRED_TOKEN, endpoint="google.batch")
    with pytest.raises(Exception, match="refresh the access token"):
        mail.sync(GMAIL)
    connection = mail.registry.get(GMAIL)
    assert connection.status == "erroring" and connection.status_detail == "RefreshError"
    assert connection.sync_state == {}
    mail.sync(GMAIL)
    assert mail.registry.get(GMAIL).status == "active"
    assert_exact(mail, GMAIL, 0)
