"""The seeded mailbox model: determinism, realistic and safe fake data, and exact change-log answers."""

from __future__ import annotations

import dataclasses
import re
from collections import Counter

import pytest

from pipelines.sandbox.mail import Account, build_accounts
from pipelines.sandbox.mail.mailbox import iter_messages
from pipelines.sandbox.mail.people import COMPANY_DOMAINS


def snapshot(account: Account) -> tuple:
    """Everything observable about an account, in a comparable form."""
    return (account.email, account.user_id, account.token, account.history_id, account.floor,
            [dataclasses.astuple(m) for m in iter_messages(account)],
            [dataclasses.astuple(account.contacts[c]) for c in account.contact_ids()],
            [(c.seq, c.kind, c.id) for c in account.changes])


def mutate(account: Account) -> None:
    ids = [m.id for m in iter_messages(account)]
    account.add_messages(5)
    account.delete_messages(ids[:2])
    account.relabel(ids[2:6], add=["Label_3", "STARRED"], remove=["UNREAD"])
    contacts = account.contact_ids()[:]
    account.add_contacts(2)
    account.update_contacts(contacts[:2])
    account.delete_contacts(contacts[2:3])


def test_same_seed_same_accounts_and_same_mutations() -> None:
    first, second = build_accounts(2, 800, 60, seed=5), build_accounts(2, 800, 60, seed=5)
    assert [snapshot(a) for a in first] == [snapshot(a) for a in second]
    for a, b in zip(first, second, strict=True):
        mutate(a)
        mutate(b)
    assert [snapshot(a) for a in first] == [snapshot(a) for a in second]
    other = build_accounts(2, 800, 60, seed=6)
    assert snapshot(other[0])[5] != snapshot(first[0])[5]
    assert len({a.email for a in first}) == len({a.token for a in first}) == len({a.user_id for a in first}) == 2


def test_twenty_thousand_messages_look_like_a_real_mailbox() -> None:
    account = build_accounts(1, messages=20_000, contacts=400, seed=3)[0]
    messages = list(iter_messages(account))
    assert len(messages) == len({m.id for m in messages}) == 20_000
    assert all(re.fullmatch(r"[0-9a-f]{16}", m.id) for m in messages[:500])
    assert [m.internal_date for m in messages] == sorted((m.internal_date for m in messages), reverse=True)
    labels = Counter(label for m in messages for label in m.labels)
    assert 0.5 < labels["INBOX"] / 20_000 < 0.8 and 0.15 < labels["SENT"] / 20_000 < 0.35
    assert labels["IMPORTANT"] and labels["UNREAD"] and all(labels[f"Label_{i}"] for i in range(1, 5))
    threads = Counter(m.thread_id for m in messages)
    assert max(threads.values()) > 2 and len(threads) < 17_000
    replies = [m for m in messages if m.in_reply_to]
    assert replies and all(m.subject.startswith("Re: ") for m in replies)
    assert any(m.html for m in messages) and any(not m.html for m in messages) and any(m.cc for m in messages)
    assert all(m.snippet and m.size_estimate > len(m.text) for m in messages[:500])
    assert all(account.owner in (m.sender, *m.to) for m in messages)


def test_fake_people_cannot_reach_anyone() -> None:
    account = build_accounts(1, messages=2000, contacts=300, seed=9)[0]
    reserved = tuple(COMPANY_DOMAINS) + ("mail.test", "inbox.test", "post.example.com", "gtg-sandbox.test")
    addresses = {a.email for m in account.messages.values() for a in (m.sender, *m.to, *m.cc)}
    addresses |= {e for c in account.contacts.values() for e in c.emails}
    assert all(a.split("@")[1] in reserved for a in addresses)
    phones = [p for c in account.contacts.values() for p in c.phones]
    assert phones and all(re.fullmatch(r"\+1\d{3}55501\d\d", e164) and display.endswith(e164[-4:])
                          for e164, display in phones)


def test_net_changes_know_the_state_at_both_ends() -> None:
    account = build_accounts(1, messages=100, contacts=10, seed=1)[0]
    start = account.history_id
    first, second = [m.id for m in iter_messages(account)][:2]
    account.relabel([first], remove=["INBOX"], add=["Label_1"])
    middle = account.history_id
    account.relabel([first], add=["Label_2"])
    new = account.add_messages(1)[0]
    account.delete_messages([new.id, second])
    net = account.net_changes("message", start)
    assert list(net) == [first, new.id, second]
    assert net[new.id] == (None, None)  # created and deleted in between: nothing to report
    before, after = net[first]
    assert before is not None and after is not None and {"Label_1", "Label_2"} <= after.labels
    assert after.labels - before.labels >= {"Label_1", "Label_2"} and after.history_id == middle + 1
    assert net[second][1] is None
    halfway = account.net_changes("message", start, middle)
    assert list(halfway) == [first] and halfway[first][1].labels == (before.labels - {"INBOX"}) | {"Label_1"}
    assert account.net_changes("contact", start) == {}
    assert not account.is_expired(start)
    account.expire_cursors()
    assert account.is_expired(start) and account.is_expired(account.history_id - 1)
    assert not account.is_expired(account.history_id)


def test_rejects_impossible_requests() -> None:
    with pytest.raises(ValueError):
        build_accounts(0)
    account = build_accounts(1, messages=10, contacts=2, seed=1)[0]
    with pytest.raises(ValueError):
        account.relabel(list(account.messages)[:1], add=["NOT_A_LABEL"])
    with pytest.raises(KeyError):
        account.delete_messages(["missing"])
