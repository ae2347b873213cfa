"""Each message's recipients as rows of the child table, each under the recipient's own key, kept exactly
in step with the mailbox by full and incremental syncs of both providers (real SDKs, sandbox servers)."""

from __future__ import annotations

from pipelines.sandbox.mail import folder_of
from tests.mail.conftest import GMAIL, GMAIL_RECIPIENTS, OUTLOOK, OUTLOOK_RECIPIENTS, MailPlatform
from tests.mail.conftest import expected_recipients as expected


def test_gmail_recipient_rows_follow_the_mailbox(mail: MailPlatform) -> None:
    account = mail.accounts[0]
    mail.sync(GMAIL)
    first = expected(account, gmail=True)
    assert mail.recipients(GMAIL_RECIPIENTS, GMAIL) == first
    assert len(first) == len(account.messages) + sum(len(m.cc) for m in account.messages.values())

    existing = list(account.messages)
    gone = existing[:6]
    account.delete_messages(gone)
    account.add_messages(5)
    account.relabel(existing[10:14], add=["STARRED"])  # fetched again: their rows are replaced, not doubled
    mail.sync(GMAIL)
    after = expected(account, gmail=True)
    assert mail.recipients(GMAIL_RECIPIENTS, GMAIL) == after
    removed = [r for r in first if r[0] in gone]
    assert removed and mail.query(f"SELECT count(*) FROM {GMAIL_RECIPIENTS} WHERE message_id IN "
                                  f"({', '.join('?' * len(gone))})", gone) == [(0,)]
    assert mail.query(f"SELECT count(*) FROM {GMAIL_RECIPIENTS}") == [(len(after),)]

    account.expire_cursors()  # a full resync deletes what it no longer lists, recipients included
    account.delete_messages(list(account.messages)[:2])
    mail.sync(GMAIL)
    assert mail.recipients(GMAIL_RECIPIENTS, GMAIL) == expected(account, gmail=True)


def test_outlook_recipient_rows_follow_the_mailbox(mail: MailPlatform) -> None:
    account = mail.accounts[1]
    mail.sync(OUTLOOK)
    assert mail.recipients(OUTLOOK_RECIPIENTS, OUTLOOK) == expected(account, gmail=False)
    inbox = [m.id for m in account.messages.values() if folder_of(m) == "inbox"]
    sent = [m.id for m in account.messages.values() if folder_of(m) == "sentitems"]
    before = mail.query(f"SELECT count(*) FROM {OUTLOOK_RECIPIENTS}")[0][0]
    dropped = sum(1 + len(account.messages[i].cc) for i in inbox[:3] + sent[:2])
    account.delete_messages(inbox[:3] + sent[:2])
    mail.sync(OUTLOOK)
    assert mail.query(f"SELECT count(*) FROM {OUTLOOK_RECIPIENTS}") == [(before - dropped,)]
    assert mail.recipients(OUTLOOK_RECIPIENTS, OUTLOOK) == expected(account, gmail=False)
