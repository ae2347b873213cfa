"""The privacy engine on the mail and contact tables, with no mail-specific privacy code: access exports,
erasure by e-mail (crypto-shredded, rows gone) also of a person who is only ever in Cc, retention,
disconnecting an account, and a byte search of the whole data folder for bodies, addresses and tokens."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import duckdb
import pytest

from pipelines.connections.disconnect import disconnect
from pipelines.privacy.audit import AuditLog
from pipelines.privacy.dsr import process_pending
from assets.privacy import POLICY
from pipelines.privacy.requests import Inbox, Request, RequestError
from pipelines.privacy.retention import run_rule
from pipelines.sandbox.mail import folder_of
from tests.mail.conftest import (  # noqa: F401 - mail: the fixture
    GMAIL, GMAIL_2, GMAIL_RECIPIENTS, OUTLOOK, OUTLOOK_RECIPIENTS, MailPlatform, expected_recipients, mail,
)

GMAIL_MESSAGES, GMAIL_CONTACTS = "raw_gmail.gmail_messages", "raw_gmail.gmail_contacts"
OUTLOOK_MESSAGES, OUTLOOK_CONTACTS = "raw_outlook.outlook_messages", "raw_outlook.outlook_contacts"
MAIL_TABLES = (GMAIL_MESSAGES, GMAIL_CONTACTS, GMAIL_RECIPIENTS, OUTLOOK_MESSAGES, OUTLOOK_CONTACTS,
               OUTLOOK_RECIPIENTS)


@pytest.fixture
def synced(mail: MailPlatform) -> MailPlatform:
    for connection_id in (GMAIL, OUTLOOK, GMAIL_2):
        mail.sync(connection_id)
    return mail


def _process(mail: MailPlatform, *requests: Request):
    inbox = Inbox(mail.root / "privacy" / "requests.sqlite")
    ids = [inbox.submit(r) for r in requests]
    return inbox, ids, _run(mail, inbox)


def _run(mail: MailPlatform, inbox: Inbox):
    with mail.keyring() as cipher, duckdb.connect(str(mail.warehouse)) as con:
        return process_pending(con, cipher, inbox, AuditLog.of(mail.root / "privacy" / "audit.jsonl", cipher),
                               exports_dir=mail.root / "exports", landing_urls={})


def _files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


def _found(root: Path, needles: set[str]) -> dict[str, list[str]]:
    """Which needles (as UTF-8 bytes) occur in which files under `root`."""
    hits: dict[str, list[str]] = {}
    for path in _files(root):
        data = path.read_bytes()
        for needle in needles:
            if needle.encode() in data:
                hits.setdefault(needle, []).append(str(path.relative_to(root)))
    return hits


def _correspondent(mail: MailPlatform) -> str:
    """A contact of the Gmail account who also wrote to it: their e-mail is in both tables."""
    account = mail.accounts[0]
    senders = {m.sender.email for m in account.messages.values() if "SENT" not in m.labels}
    return next(c.emails[0] for c in account.contacts.values() if c.emails[0] in senders)


def _recipient_rows(mail: MailPlatform, email: str) -> dict[str, list[tuple[str, str, int, str]]]:
    """The recipient rows of `email` in workspace ws_0001 (the Gmail and the Outlook account), by table."""
    found = {GMAIL_RECIPIENTS: [r for r in expected_recipients(mail.accounts[0], gmail=True) if r[3] == email],
             OUTLOOK_RECIPIENTS: [r for r in expected_recipients(mail.accounts[1], gmail=False) if r[3] == email]}
    return {table: rows for table, rows in found.items() if rows}


def _only_in_cc(mail: MailPlatform) -> str:
    """Someone of workspace ws_0001 who is never a sender, a To recipient or a contact there: only in Cc."""
    accounts = mail.accounts[:2]
    elsewhere = {a.email for account in accounts for m in account.messages.values() for a in (m.sender, *m.to)}
    elsewhere |= {e for account in accounts for c in account.contacts.values() for e in c.emails}
    cc = sorted({a.email for m in accounts[0].messages.values() for a in m.cc} - elsewhere)
    return cc[0]


def test_nothing_personal_or_secret_is_readable_on_disk(synced: MailPlatform) -> None:
    needles: set[str] = set()
    for account in synced.accounts:
        needles.add(account.token)
        for message in list(account.messages.values())[:60]:
            needles |= {message.sender.email, message.subject, message.text.split("\r\n")[2][:60]}
        for contact in list(account.contacts.values())[:20]:
            needles |= {contact.emails[0], contact.display_name, *(p for p, _ in contact.phones)}
    assert len(synced.query(f"SELECT * FROM {GMAIL_MESSAGES}")) == 500  # loaded, then searched for
    assert _found(synced.root, needles) == {}


def test_access_export_reads_mail_and_contacts_of_a_person(synced: MailPlatform) -> None:
    account = synced.accounts[0]
    email = _correspondent(synced)
    _, (request_id,), report = _process(synced, Request("access", "ws_0001", "email", email.upper()))
    document = json.loads((synced.root / "exports" / f"{request_id}.json").read_text())
    messages = document["tables"][GMAIL_MESSAGES]
    expected = sorted(m.id for m in account.messages.values()
                      if (m.to[0].email if "SENT" in m.labels else m.sender.email) == email)
    assert sorted(r["message_id"] for r in messages) == expected
    by_id = {m.id: m for m in account.messages.values()}
    assert all(r["subject"] == by_id[r["message_id"]].subject for r in messages)
    (contact,) = document["tables"][GMAIL_CONTACTS]
    assert contact["primary_email"] == email and "primary_email_bidx" not in contact
    recipients = _recipient_rows(synced, email)
    assert report.rows_by_table == {GMAIL_MESSAGES: len(expected), GMAIL_CONTACTS: 1,
                                    **{table: len(rows) for table, rows in recipients.items()}}
    assert sorted((r["message_id"], r["role"], r["position"], r["address"])
                  for r in document["tables"][GMAIL_RECIPIENTS]) == recipients[GMAIL_RECIPIENTS]


def test_access_export_finds_a_person_only_in_cc(synced: MailPlatform) -> None:
    email = _only_in_cc(synced)
    _, (request_id,), report = _process(synced, Request("access", "ws_0001", "email", f" {email.upper()} "))
    document = json.loads((synced.root / "exports" / f"{request_id}.json").read_text())
    expected = _recipient_rows(synced, email)
    assert expected[GMAIL_RECIPIENTS] and all(r[1] == "cc" for rows in expected.values() for r in rows)
    assert report.rows_by_table == {table: len(rows) for table, rows in expected.items()}
    for table, rows in expected.items():
        exported = document["tables"][table]
        assert sorted((r["message_id"], r["role"], r["position"], r["address"]) for r in exported) == rows
        assert all("address_bidx" not in r and "subject_ref" not in r for r in exported)


def test_erasure_of_a_person_only_in_cc_keeps_the_messages(synced: MailPlatform) -> None:
    email = _only_in_cc(synced)
    expected = _recipient_rows(synced, email)
    tables = {GMAIL_RECIPIENTS: (GMAIL, 0, True), OUTLOOK_RECIPIENTS: (OUTLOOK, 1, False)}
    before = {t: synced.query(f"SELECT count(*) FROM {t}")[0][0] for t in tables}
    messages = {GMAIL_MESSAGES: GMAIL, OUTLOOK_MESSAGES: OUTLOOK}
    subjects = {t: synced.decrypted(t, c, "subject") for t, c in messages.items()}
    with synced.keyring() as cipher:
        (ref,) = cipher.blind_index("ws_0001", [email], kind="user.contact.email").to_pylist()
    held = synced.query(f"SELECT workspace_id, subject_ref, address FROM {GMAIL_RECIPIENTS} WHERE subject_ref = ?",
                        [ref])
    assert len(held) == len(expected[GMAIL_RECIPIENTS])
    _, _, report = _process(synced, Request("erasure", "ws_0001", "email", email))
    assert report.rows_by_table == {table: len(rows) for table, rows in expected.items()}
    assert report.keys_destroyed == 1  # theirs: one subject key in the workspace
    for table, (connection_id, index, gmail) in tables.items():
        gone = len(expected.get(table, []))
        assert synced.query(f"SELECT count(*) FROM {table}") == [(before[table] - gone,)]
        others = [r for r in expected_recipients(synced.accounts[index], gmail) if r[3] != email]
        assert synced.recipients(table, connection_id) == others  # everyone else's rows still decrypt
    with synced.keyring() as cipher:  # what a backup taken before kept of them is noise now
        assert cipher.decrypt_many([r[0] for r in held], [r[1] for r in held], [r[2] for r in held],
                                   "gmail_message_recipients.address").to_pylist() == [None] * len(held)
    assert {t: synced.decrypted(t, c, "subject") for t, c in messages.items()} == subjects  # the messages remain
    assert _found(synced.root, {email}) == {}


def test_erasure_by_email_deletes_rows_and_keys(synced: MailPlatform) -> None:
    account = synced.accounts[0]
    email = _correspondent(synced)
    before = synced.decrypted(GMAIL_MESSAGES, GMAIL, "subject")
    _, _, report = _process(synced, Request("erasure", "ws_0001", "email", email))
    mine = {m.id for m in account.messages.values() if (m.to[0].email if "SENT" in m.labels else m.sender.email) == email}
    held = {r[0] for r in synced.held(GMAIL_MESSAGES, GMAIL)}
    assert held == set(account.messages) - mine and mine
    assert report.rows_by_table[GMAIL_CONTACTS] == 1 and report.keys_destroyed >= 1
    after = synced.decrypted(GMAIL_MESSAGES, GMAIL, "subject")
    assert after == {k: v for k, v in before.items() if k not in mine}  # everyone else still readable
    assert _found(synced.root, {email}) == {}


def test_retention_deletes_expired_mail_and_contacts(synced: MailPlatform) -> None:
    policy = POLICY
    rules = {r.table: r for r in policy.rules if r.table in MAIL_TABLES}
    assert set(rules) == set(MAIL_TABLES)
    rule = rules[GMAIL_MESSAGES]
    newest = max(m.internal_date for m in synced.accounts[0].messages.values())
    middle = dt.datetime.fromtimestamp(newest / 1000, dt.timezone.utc) - dt.timedelta(days=120)
    now = middle + dt.timedelta(days=rule.keep_days)
    old = {a.index: sum(m.internal_date < middle.timestamp() * 1000 for m in a.messages.values())
           for a in synced.accounts}
    with synced.keyring() as cipher, duckdb.connect(str(synced.warehouse)) as con:
        audit = AuditLog.of(synced.root / "privacy" / "audit.jsonl", cipher)
        result = run_rule(con, rule, cipher, audit, now)
        assert result.rows_expired == old[0] + old[2] and 0 < result.rows_expired < 500
        everything = {t: run_rule(con, r, cipher, audit, now + dt.timedelta(days=400)) for t, r in rules.items()}
    assert everything[GMAIL_CONTACTS].rows_expired == 80 and everything[OUTLOOK_CONTACTS].rows_expired == 40
    for table in MAIL_TABLES:
        assert synced.query(f"SELECT count(*) FROM {table}") == [(0,)]


def test_disconnect_erases_the_connection_through_the_privacy_engine(synced: MailPlatform) -> None:
    account = synced.accounts[1]
    inbox = Inbox(synced.root / "privacy" / "requests.sqlite")
    request_id = disconnect(synced.registry, inbox, OUTLOOK, requested_by="test")
    connection = synced.registry.get(OUTLOOK)
    assert connection.status == "revoked" and connection.sync_state == {}
    report = _run(synced, inbox)
    held = len([m for m in account.messages.values() if folder_of(m) in ("inbox", "sentitems")])
    recipients = len(expected_recipients(account, gmail=False))
    tables = {OUTLOOK_MESSAGES: held, OUTLOOK_CONTACTS: 40, OUTLOOK_RECIPIENTS: recipients}
    assert report.rows_by_table == tables
    assert inbox.get(request_id)["status"] == "completed"
    for table in tables:
        assert synced.query(f"SELECT count(*) FROM {table} WHERE connection_id = ?", [OUTLOOK]) == [(0,)]
    assert len(synced.held(GMAIL_MESSAGES, GMAIL)) == 250 and len(synced.held(GMAIL_MESSAGES, GMAIL_2)) == 250
    assert len(synced.decrypted(GMAIL_MESSAGES, GMAIL, "subject")) == 250  # the workspace's other account
    entry = [json.loads(line) for line in (synced.root / "privacy" / "audit.jsonl").read_text().splitlines()][-1]
    assert entry["action"] == "dsr.erasure" and entry["request_id"] == request_id
    assert entry["tables"] == tables
    assert _found(synced.root, {account.token}) == {}
    with pytest.raises(RequestError):
        Inbox(synced.root / "privacy" / "requests.sqlite").submit(Request("access", "ws_0001", "connection", GMAIL))
