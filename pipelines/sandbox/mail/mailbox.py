"""Seeded mailbox and address book of one sandbox account, with an append-only change log.

Why it exists: the Gmail, People and Graph sandbox servers must serve the *same* kind of account, change it
between syncs, and answer incremental-sync questions ("what changed since cursor X?") exactly, so tests can
assert that a sync saw every change and nothing else. This module holds that state once; the servers only
translate it into each provider's wire format.

The model is Gmail-shaped because Gmail's is the richer one: a message carries a set of label ids (INBOX,
SENT, IMPORTANT, UNREAD, user labels), and every mutation gets the next *sequence number*, which is the
Gmail history id and also what Graph delta links and People sync tokens remember. The change log keeps the
state of each touched record before and after the change, so "state at cursor X" is known without
snapshots. `expire_cursors()` moves a floor: cursors older than it are answered as expired.

Determinism: generation is driven by `random.Random` seeded from `(seed, account index)` in a fixed order,
with a fixed end date and no wall clock; mutations draw from a second seeded stream and advance a logical
clock, so the same seed and the same sequence of calls give identical accounts. Generation is one pass with
a few random draws per message (20,000 messages take well under a second).
"""

from __future__ import annotations

import bisect
import datetime as dt
import random
import threading
import uuid
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

from pipelines.sandbox.mail.people import Person, person

__all__ = [
    "Account", "Address", "Change", "Contact", "Message", "SYSTEM_LABELS", "USER_LABELS", "build_accounts",
    "iter_messages",
]

SYSTEM_LABELS: tuple[str, ...] = (
    "INBOX", "SENT", "IMPORTANT", "UNREAD", "STARRED", "CATEGORY_PERSONAL", "CATEGORY_UPDATES", "CATEGORY_PROMOTIONS",
)
USER_LABELS: dict[str, str] = {"Label_1": "Clients", "Label_2": "Invoices", "Label_3": "Newsletters", "Label_4": "Follow-up"}
DEFAULT_END = dt.datetime(2026, 11, 24, 18, 0, tzinfo=dt.timezone.utc)
_MINUTE_MS = 60_000
_OWNER_DOMAIN = "gtg-sandbox.test"

_SUBJECTS = (
    "Quarterly review: {topic}", "Proposal for {company}", "Invoice {number} from {company}", "Re: {topic} next steps",
    "Meeting on {day}", "Follow-up on our call about {topic}", "{company} onboarding checklist", "Contract renewal {number}",
    "Question about {topic}", "Updated pricing for {company}", "Demo recording: {topic}", "Action items from {day}",
)
_TOPICS = (
    "the CRM rollout", "pipeline hygiene", "the Q3 forecast", "lead scoring", "the data import", "the renewal",
    "support tickets", "the integration", "contact deduplication", "the marketing plan", "SSO setup", "the budget",
)
_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday")
_NEWSLETTERS = (
    "Your weekly product digest", "5 ways to grow your pipeline", "Webinar invitation: modern sales teams",
    "Release notes for this month", "Your account statement is ready", "Last chance: conference early-bird pricing",
)
_SENTENCES = (
    "Thanks for taking the time to meet with us earlier this week.",
    "I have attached the notes from our discussion for your reference.",
    "Could you confirm whether the proposed timeline still works for your team?",
    "We reviewed the numbers and they look consistent with the forecast.",
    "Please let me know if anything in the draft needs to change before we sign.",
    "The import finished overnight and the duplicate contacts were merged.",
    "Our legal team has a few small comments on section four of the agreement.",
    "I will share the updated deck before the end of the day.",
    "The invoice is due within thirty days of the date shown above.",
    "Happy to jump on a short call if that is easier than email.",
    "We saw a strong increase in qualified leads since the campaign launched.",
    "Can we move our check-in to later in the week?",
    "I have looped in my colleague who owns the integration work.",
    "The dashboard now shows the pipeline by stage and by owner.",
    "Let us know which of the two options you prefer.",
    "Everything is on track for the go-live date we agreed on.",
)
_GREETINGS = ("Hi {name},", "Hello {name},", "Dear {name},", "Hey {name},", "Good morning {name},")
_SIGNOFFS = ("Best regards,", "Thanks,", "Kind regards,", "Cheers,", "All the best,")


@dataclass(frozen=True, slots=True)
class Address:
    name: str
    email: str

    def header(self) -> str:
        """RFC 5322 mailbox form, `"Name" <email>` style without quotes when the name needs none."""
        return f"{self.name} <{self.email}>" if self.name else self.email


@dataclass(frozen=True, slots=True)
class Message:
    """One message as stored; immutable so the change log can keep old versions by reference."""

    id: str
    thread_id: str
    labels: frozenset[str]
    internal_date: int  # ms since the epoch, when the message was received (or sent)
    modified: int  # ms since the epoch of the last change (labels or creation)
    sender: Address
    to: tuple[Address, ...]
    cc: tuple[Address, ...]
    subject: str
    text: str
    html: str | None
    message_id_header: str
    in_reply_to: str | None
    history_id: int  # sequence number of the last change to this message

    @property
    def snippet(self) -> str:
        return " ".join(self.text.split())[:200]

    @property
    def size_estimate(self) -> int:
        """Rough size of the RFC 822 form: headers plus the text and HTML parts."""
        headers = 160 + len(self.subject) + sum(len(a.name) + len(a.email) + 4 for a in (self.sender, *self.to, *self.cc))
        return headers + len(self.text.encode()) + (len(self.html.encode()) + 120 if self.html else 0)


@dataclass(frozen=True, slots=True)
class Contact:
    """One address-book entry; `phones` are E.164 with the national display form beside each."""

    id: str
    given_name: str
    family_name: str
    emails: tuple[str, ...]
    phones: tuple[tuple[str, str], ...]  # (E.164, display form)
    company: str
    created: int  # ms since the epoch
    updated: int
    version: int  # sequence number of the last change

    @property
    def display_name(self) -> str:
        return f"{self.given_name} {self.family_name}"


Record = Message | Contact
Kind = Literal["message", "contact"]


@dataclass(frozen=True, slots=True)
class Change:
    """One mutation: the record's state before and after (None = absent)."""

    seq: int
    kind: Kind
    id: str
    before: Record | None
    after: Record | None


@dataclass
class Account:
    """One sandbox user: identity, mailbox, contacts and the change log, guarded by one lock.

    Servers hold `lock` while they read, tests call the mutation methods (which take it too), so a sync that
    runs in the server threads always sees a consistent state.
    """

    index: int
    seed: int
    email: str
    display_name: str
    user_id: str  # the Graph directory id (a GUID)
    token: str  # the access token that selects this account
    messages: dict[str, Message] = field(default_factory=dict)
    contacts: dict[str, Contact] = field(default_factory=dict)
    history_id: int = 0  # the current (latest) sequence number
    floor: int = 0  # cursors older than this are expired
    changes: list[Change] = field(default_factory=list)
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False, compare=False)
    _change_seqs: list[int] = field(default_factory=list, repr=False)
    _order: list[tuple[int, str]] | None = field(default=None, repr=False)  # (-internal_date, id), newest first
    _contact_ids: list[str] | None = field(default=None, repr=False)
    _clock: int = 0
    _rng: random.Random = field(default_factory=random.Random, repr=False, compare=False)
    _population: int = 0  # people indices used so far (contacts, correspondents)

    @property
    def owner(self) -> Address:
        return Address(self.display_name, self.email)

    @property
    def labels(self) -> dict[str, str]:
        """Label id -> name (system labels are named by their id, as Gmail does)."""
        return {**{label: label for label in SYSTEM_LABELS}, **USER_LABELS}

    # ----------------------------------------------------------------------------------------------------------
    # Reads
    # ----------------------------------------------------------------------------------------------------------

    def newest_first(self) -> list[tuple[int, str]]:
        """Messages as (-internal_date, id), newest first: the order Gmail lists them in. Cached between adds."""
        with self.lock:
            if self._order is None:
                self._order = sorted((-m.internal_date, m.id) for m in self.messages.values())
            return self._order

    def contact_ids(self) -> list[str]:
        """Contact ids sorted, cached between adds and deletes: generation draws correspondents from it once per
        message, and delta/sync listings page through it by id."""
        with self.lock:
            if self._contact_ids is None:
                self._contact_ids = sorted(self.contacts)
            return self._contact_ids

    def changes_after(self, seq: int, upto: int | None = None) -> Sequence[Change]:
        """Changes with `seq < change.seq <= upto` in order (upto defaults to the latest)."""
        with self.lock:
            start = bisect.bisect_right(self._change_seqs, seq)
            stop = len(self._change_seqs) if upto is None else bisect.bisect_right(self._change_seqs, upto)
            return self.changes[start:stop]

    def net_changes(self, kind: Kind, since: int, upto: int | None = None) -> dict[str, tuple[Record | None, Record | None]]:
        """Per record touched in `(since, upto]`: (state at `since`, state at `upto`), in order of first change.

        A delta or sync-token answer is decided from these two states alone: present now -> send it; absent
        now but present then -> send a removal; absent at both ends -> nothing (created and deleted between).
        """
        net: dict[str, tuple[Record | None, Record | None]] = {}
        for change in self.changes_after(since, upto):
            if change.kind == kind:
                first = net.get(change.id)
                net[change.id] = (change.before if first is None else first[0], change.after)
        return net

    def is_expired(self, seq: int) -> bool:
        return seq < self.floor

    # ----------------------------------------------------------------------------------------------------------
    # Mutations (each changed record gets the next sequence number)
    # ----------------------------------------------------------------------------------------------------------

    def add_messages(self, count: int, labels: Iterable[str] = ("INBOX", "UNREAD")) -> list[Message]:
        """Deliver `count` new messages from known contacts (or strangers), newest last."""
        wanted = frozenset(labels)
        added: list[Message] = []
        with self.lock:
            for _ in range(count):
                self._clock += self._rng.randrange(1, 30) * _MINUTE_MS
                message = _compose(self, self._rng, self._clock, None, wanted, self._next_seq())
                self._record("message", message.id, None, message)
                self.messages[message.id] = message
                added.append(message)
            self._order = None
        return added

    def delete_messages(self, ids: Iterable[str]) -> None:
        """Permanently delete messages (Gmail `messages.delete`, not trash): history shows messagesDeleted."""
        with self.lock:
            for message_id in ids:
                before = self.messages.pop(message_id)
                self._next_seq()
                self._record("message", message_id, before, None)
            self._order = None

    def relabel(self, ids: Iterable[str], add: Iterable[str] = (), remove: Iterable[str] = ()) -> list[Message]:
        """Add and remove labels (moving between Outlook folders is a relabel: see graph_server.folder_of)."""
        to_add, to_remove = frozenset(add), frozenset(remove)
        unknown = (to_add | to_remove) - set(self.labels)
        if unknown:
            raise ValueError(f"unknown labels: {sorted(unknown)}")
        changed: list[Message] = []
        with self.lock:
            for message_id in ids:
                before = self.messages[message_id]
                labels = (before.labels - to_remove) | to_add
                if labels == before.labels:
                    continue
                self._clock += _MINUTE_MS
                after = replace(before, labels=labels, modified=self._clock, history_id=self._next_seq())
                self._record("message", message_id, before, after)
                self.messages[message_id] = after
                changed.append(after)
        return changed

    def add_contacts(self, count: int) -> list[Contact]:
        added: list[Contact] = []
        with self.lock:
            for _ in range(count):
                self._clock += _MINUTE_MS
                contact = _contact(self, self._rng, self._clock, self._next_seq())
                self._record("contact", contact.id, None, contact)
                self.contacts[contact.id] = contact
                added.append(contact)
            self._contact_ids = None
        return added

    def update_contacts(self, ids: Iterable[str]) -> list[Contact]:
        """Give each contact a new mobile number and company (a typical address-book edit)."""
        changed: list[Contact] = []
        with self.lock:
            for contact_id in ids:
                before = self.contacts[contact_id]
                other = self._new_person()
                self._clock += _MINUTE_MS
                after = replace(before, phones=((other.phone, other.phone_display), *before.phones[:1]),
                                company=other.company or before.company, updated=self._clock, version=self._next_seq())
                self._record("contact", contact_id, before, after)
                self.contacts[contact_id] = after
                changed.append(after)
        return changed

    def delete_contacts(self, ids: Iterable[str]) -> None:
        with self.lock:
            for contact_id in ids:
                before = self.contacts.pop(contact_id)
                self._next_seq()
                self._record("contact", contact_id, before, None)
            self._contact_ids = None

    def expire_cursors(self) -> None:
        """Make every history id, delta link and sync token issued so far expired (as after a long outage)."""
        with self.lock:
            self.floor = self._next_seq()

    # ----------------------------------------------------------------------------------------------------------

    def _next_seq(self) -> int:
        self.history_id += 1
        return self.history_id

    def _record(self, kind: Kind, record_id: str, before: Record | None, after: Record | None) -> None:
        """Log a change under the current sequence number (the caller has just taken it with `_next_seq`)."""
        seq = self.history_id
        self.changes.append(Change(seq, kind, record_id, before, after))
        self._change_seqs.append(seq)

    def _new_person(self) -> Person:
        self._population += 1
        return person(self.seed, self._population - 1)


def build_accounts(count: int = 2, messages: int = 500, contacts: int = 100, seed: int = 7,
                   end: dt.datetime = DEFAULT_END, days: int = 365) -> list[Account]:
    """`count` accounts, each with its own seed-derived mailbox; same arguments -> identical accounts."""
    if count < 1 or messages < 0 or contacts < 0 or days < 1:
        raise ValueError("need count >= 1, messages >= 0, contacts >= 0, days >= 1")
    return [_build_account(index, seed * 1_000 + index, messages, contacts, end, days) for index in range(count)]


def _build_account(index: int, seed: int, messages: int, contacts: int, end: dt.datetime, days: int) -> Account:
    rng = random.Random(seed)
    owner = person(seed, 10**9)
    local = f"{owner.given_name}.{owner.family_name}".lower().replace("'", "")
    base_history = rng.randrange(2_000_000, 3_000_000) + messages + contacts
    account = Account(
        index=index, seed=seed, email=f"{local}{index}@{_OWNER_DOMAIN}", display_name=owner.display_name,
        user_id=str(uuid.UUID(int=rng.getrandbits(128), version=4)), token=f"sandbox-{index}-{rng.getrandbits(64):016x}",
    )
    end_ms = int(end.timestamp() * 1000)
    start_ms = end_ms - days * 86_400_000
    account.history_id = base_history - messages - contacts
    for i in range(contacts):
        created = start_ms + (i * (end_ms - start_ms)) // max(contacts, 1)
        contact = _contact(account, rng, created, account._next_seq())
        account.contacts[contact.id] = contact
    step = (end_ms - start_ms) / max(messages, 1)
    threads: deque[Message] = deque(maxlen=200)
    for i in range(messages):
        when = start_ms + int((i + rng.random()) * step)
        parent = threads[rng.randrange(len(threads))] if threads and rng.random() < 0.35 else None
        message = _compose(account, rng, when, parent, None, account._next_seq())
        account.messages[message.id] = message
        threads.append(message)
    account.floor = account.history_id
    account._clock = end_ms
    account._rng = random.Random(seed * 7 + 3)
    return account


def _contact(account: Account, rng: random.Random, created: int, seq: int) -> Contact:
    who = account._new_person()
    emails = [who.email]
    if rng.random() < 0.2:
        emails.append(f"{who.given_name.lower()}.{rng.randrange(10, 99)}@mail.test")
    phones = [(who.phone, who.phone_display)] if rng.random() < 0.85 else []
    if phones and rng.random() < 0.2:
        other = person(account.seed, 10**8 + account._population)
        phones.append((other.phone, other.phone_display))
    return Contact(id=f"c{rng.getrandbits(62):019d}", given_name=who.given_name, family_name=who.family_name,
                   emails=tuple(emails), phones=tuple(phones), company=who.company, created=created, updated=created,
                   version=seq)


def _correspondent(account: Account, rng: random.Random) -> Address:
    """Mostly people in the address book, sometimes strangers (a new lead, a vendor)."""
    if account.contacts and rng.random() < 0.8:
        contact = account.contacts[rng.choice(account.contact_ids())]
        return Address(contact.display_name, contact.emails[0])
    stranger = person(account.seed, 10**7 + rng.randrange(5_000))
    return Address(stranger.display_name, stranger.email)


def _compose(account: Account, rng: random.Random, when: int, parent: Message | None,
             labels: frozenset[str] | None, seq: int) -> Message:
    """One message at `when`; a reply to `parent` when given. `labels=None` draws realistic labels."""
    message_id = f"{when:011x}{rng.getrandbits(20):05x}"
    while message_id in account.messages:  # ids start with the time, as Gmail's do; the suffix keeps them unique
        message_id = f"{when:011x}{rng.getrandbits(20):05x}"
    outgoing = rng.random() < 0.25 if labels is None else "SENT" in labels
    if parent is not None:
        other = parent.to[0] if parent.sender == account.owner else parent.sender
        subject = parent.subject if parent.subject.startswith("Re: ") else f"Re: {parent.subject}"
        newsletter = False
    else:
        newsletter = labels is None and not outgoing and rng.random() < 0.12
        other = _correspondent(account, rng)
        subject = _subject(rng, newsletter)
    cc = (_correspondent(account, rng),) if rng.random() < 0.15 else ()
    sender, to = (account.owner, (other,)) if outgoing else (other, (account.owner,))
    text = _body(rng, to[0].name.split(" ")[0] or "there", sender.name or sender.email)
    html = _html(text) if newsletter or rng.random() < 0.4 else None
    if labels is None:
        labels = _labels(rng, outgoing, newsletter, when)
    return Message(
        id=message_id, thread_id=parent.thread_id if parent else message_id, labels=labels, internal_date=when,
        modified=when, sender=sender, to=to, cc=cc, subject=subject, text=text, html=html,
        message_id_header=f"<{message_id}.{rng.getrandbits(32):08x}@{sender.email.split('@')[1]}>",
        in_reply_to=parent.message_id_header if parent else None, history_id=seq,
    )


def _subject(rng: random.Random, newsletter: bool) -> str:
    if newsletter:
        return rng.choice(_NEWSLETTERS)
    return rng.choice(_SUBJECTS).format(topic=rng.choice(_TOPICS), company=rng.choice(("Acme", "Northwind", "Globex",
                                        "Initech", "Hooli", "Vandelay")), number=rng.randrange(1000, 9999),
                                        day=rng.choice(_DAYS))


def _body(rng: random.Random, greeting_name: str, signer: str) -> str:
    sentences = " ".join(rng.sample(_SENTENCES, rng.randrange(2, 6)))
    return (f"{rng.choice(_GREETINGS).format(name=greeting_name)}\r\n\r\n{sentences}\r\n\r\n"
            f"{rng.choice(_SIGNOFFS)}\r\n{signer}\r\n")


def _html(text: str) -> str:
    paragraphs = "".join(f"<p>{line}</p>" for line in text.split("\r\n") if line)
    return f"<html><body>{paragraphs}</body></html>"


def _labels(rng: random.Random, outgoing: bool, newsletter: bool, when: int) -> frozenset[str]:
    if outgoing:
        return frozenset(("SENT",))
    labels = {"INBOX", "CATEGORY_PROMOTIONS" if newsletter else "CATEGORY_PERSONAL"}
    if rng.random() < 0.10:
        labels.discard("INBOX")  # archived
    if rng.random() < 0.2:
        labels.add("UNREAD")
    if not newsletter and rng.random() < 0.15:
        labels.add("IMPORTANT")
    if rng.random() < 0.2:
        labels.add(("Label_1", "Label_2", "Label_4")[rng.randrange(3)] if not newsletter else "Label_3")
    return frozenset(labels)


def iter_messages(account: Account) -> Iterator[Message]:
    """Messages newest first (a convenience for tests and the CLI)."""
    for _, message_id in account.newest_first():
        yield account.messages[message_id]
