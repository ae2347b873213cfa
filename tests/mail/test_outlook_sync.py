"""The Outlook source with msgraph-sdk against the Graph sandbox: exact delta rounds (Inbox, Sent Items,
contacts), `@removed`, expired delta links (410) and every fault switch."""

from __future__ import annotations

import pytest

from pipelines.sandbox.mail import FaultKind, folder_of
from pipelines.sandbox.mail.graph_server import graph_contact_id, graph_message_id
from tests.mail.conftest import OUTLOOK, MailPlatform

MESSAGES, CONTACTS = "raw_outlook.outlook_messages", "raw_outlook.outlook_contacts"


def assert_exact(mail: MailPlatform) -> None:
    """Exactly the Inbox and Sent Items of the account, each in its folder, and its contacts; no duplicates."""
    account = mail.accounts[1]
    expected = sorted((graph_message_id(account, m.id), folder_of(m)) for m in account.messages.values()
                      if folder_of(m) in ("inbox", "sentitems"))
    assert mail.held(MESSAGES, OUTLOOK, "message_id, folder") == expected
    contacts = [r[0] for r in mail.held(CONTACTS, OUTLOOK, "contact_id")]
    assert contacts == sorted(graph_contact_id(account, c) for c in account.contacts)


def test_full_then_incremental_delta_is_exact(mail: MailPlatform) -> None:
    account = mail.accounts[1]
    report = mail.sync(OUTLOOK)
    assert_exact(mail)
    held = len(mail.held(MESSAGES, OUTLOOK))
    assert report.streams["outlook_messages"].inserted == held and report.streams["outlook_contacts"].inserted == 40
    assert report.http_requests == 3  # one page per folder and one for contacts (1,000 per page)
    subjects = mail.decrypted(MESSAGES, OUTLOOK, "subject")
    bodies = mail.decrypted(MESSAGES, OUTLOOK, "body_text")
    for message in account.messages.values():
        gid = graph_message_id(account, message.id)
        if gid in subjects:
            assert subjects[gid] == message.subject
            assert bodies[gid].split() == message.text.split()  # HTML bodies reduced to the same text

    inbox = [m.id for m in account.messages.values() if folder_of(m) == "inbox"]
    sent = [m.id for m in account.messages.values() if folder_of(m) == "sentitems"]
    added = [m.id for m in account.add_messages(4)]
    account.delete_messages(inbox[:2] + sent[:1] + added[:1])
    account.relabel(inbox[5:8], remove=["INBOX"])  # moved to the archive: removed from the Inbox delta
    read = account.relabel(inbox[10:12], remove=["UNREAD"], add=["Label_1"])
    contacts = list(account.contacts)
    account.add_contacts(2)
    account.update_contacts(contacts[:3])
    account.delete_contacts(contacts[4:5])
    report = mail.sync(OUTLOOK)
    assert_exact(mail)
    counts = report.streams["outlook_messages"]
    assert (counts.inserted, counts.updated, counts.deleted, counts.full_resync) == (3, len(read), 6, False)
    people = report.streams["outlook_contacts"]
    assert (people.inserted, people.updated, people.deleted) == (2, 3, 1)


def test_expired_delta_links_resync_without_duplicates(mail: MailPlatform) -> None:
    account = mail.accounts[1]
    mail.sync(OUTLOOK)
    inbox = [m.id for m in account.messages.values() if folder_of(m) == "inbox"]
    account.delete_messages(inbox[:3])
    account.delete_contacts(list(account.contacts)[:2])
    account.expire_cursors()
    report = mail.sync(OUTLOOK)
    assert report.streams["outlook_messages"].cursor_expired and report.streams["outlook_messages"].deleted == 3
    assert report.streams["outlook_contacts"].full_resync and report.streams["outlook_contacts"].deleted == 2
    assert_exact(mail)
    mail.graph.faults.inject(FaultKind.EXPIRED_CURSOR, endpoint="graph.contacts.delta")  # one link only
    report = mail.sync(OUTLOOK)
    assert report.streams["outlook_contacts"].cursor_expired and not report.streams["outlook_messages"].full_resync
    assert report.streams["outlook_contacts"].deleted == 0
    assert_exact(mail)


FAULTS = [
    (FaultKind.RATE_LIMIT, "graph.messages.delta", 3, {}),
    (FaultKind.SERVER_ERROR, "graph.messages.delta", 2, {"status": 504}),
    (FaultKind.SERVER_ERROR, "graph.contacts.delta", 1, {"status": 500}),
    (FaultKind.DROP, "graph.messages.delta", 2, {}),
    (FaultKind.TRUNCATE, "graph.contacts.delta", 1, {}),
    (FaultKind.SLOW, "graph.messages.delta", 1, {"delay": 0.2}),
]


@pytest.mark.parametrize("kind, endpoint, times, options", FAULTS,
                         ids=[f"{k.value}-{e}" for k, e, _, _ in FAULTS])
def test_faults_end_with_the_exact_mailbox(mail: MailPlatform, kind, endpoint, times, options) -> None:
    account = mail.accounts[1]
    mail.graph.faults.inject(kind, times=times, endpoint=endpoint, **options)
    first = mail.sync(OUTLOOK)
    account.add_messages(3)
    account.delete_messages([m.id for m in account.messages.values() if folder_of(m) == "inbox"][:2])
    mail.graph.faults.inject(kind, times=times, endpoint=endpoint, **options)
    second = mail.sync(OUTLOOK)
    assert mail.graph.faults.fired[kind.value] == 2 * times and mail.graph.faults.armed == []
    assert_exact(mail)
    if kind is not FaultKind.SLOW:
        assert first.retries == times and second.retries == times


def test_expired_access_token_marks_the_connection_erroring(mail: MailPlatform) -> None:
    mail.graph.faults.inject(FaultKind.EXPIRED_TOKEN, endpoint="graph.messages.delta")
    with pytest.raises(Exception, match="401"):
        mail.sync(OUTLOOK)
    assert mail.registry.get(OUTLOOK).status == "erroring"
    mail.sync(OUTLOOK)
    assert mail.registry.get(OUTLOOK).status == "active"
    assert_exact(mail)
