"""The columns every mail provider's messages and contacts share, with their personal-data declaration.

Declared once: encryption (`pipelines.privacy.protect`), the PII checks, retention, erasure and access
exports all read these hints back from the stored dlt schema. A message's data subject is its correspondent
(the sender of a received message, the first recipient of a sent one: the other party, whose erasure
request must find it), a contact's is their primary e-mail address (else phone). Addresses and phones are
stored normalised (`pipelines.privacy.requests.normalise_identity`), so the blind index computed on them
equals the one computed on an erasure request's `--email` / `--phone`. Recipients other than the correspondent
are not message columns: each is a row of the recipients child table (`pipelines.mail_common.recipients`),
under their own subject.
"""

from __future__ import annotations

import email.utils

from dlt.common.schema.typing import TTableSchemaColumns

from pipelines.mail_common.stage import INDEX, PERSONAL
from pipelines.privacy.requests import normalise_identity

MESSAGE_COLUMNS: TTableSchemaColumns = {
    "thread_id": {"data_type": "text", "nullable": True, "description": "The provider's conversation id."},
    "received_at": {"data_type": "timestamp", "nullable": True, "description": "When the mailbox received it."},
    "sent_at": {"data_type": "timestamp", "nullable": True, "description": "When it was sent."},
    "size_bytes": {"data_type": "bigint", "nullable": True, "description": "Size of the message."},
    "outgoing": {"data_type": "bool", "nullable": True, "description": "Sent from this mailbox (else received)."},
    "subject_ref": {"data_type": "binary", "nullable": True, "x-subject-ref": True, "x-subject-of": ["correspondent"],
                    "x-subject-categories": {"correspondent": "user.contact.email"}},
    "from_name": {**PERSONAL, "x-data-category": "user.name"},
    "from_address": {**PERSONAL, "x-data-category": "user.contact.email"},
    "subject": {**PERSONAL, "x-data-category": "user.content.email_subject"},
    "snippet": {**PERSONAL, "x-data-category": "user.content.email_body"},
    "body_text": {**PERSONAL, "x-data-category": "user.content.email_body"},
}

CONTACT_COLUMNS: TTableSchemaColumns = {
    "updated_at": {"data_type": "timestamp", "nullable": True, "description": "When the provider last changed it."},
    "etag": {"data_type": "text", "nullable": True, "description": "The provider's version tag of the contact."},
    "subject_ref": {"data_type": "binary", "nullable": True, "x-subject-ref": True,
                    "x-subject-of": ["primary_email", "primary_phone"]},
    "display_name": {**PERSONAL, "x-data-category": "user.name"},
    "given_name": {**PERSONAL, "x-data-category": "user.name"},
    "family_name": {**PERSONAL, "x-data-category": "user.name"},
    "primary_email": {**PERSONAL, "x-data-category": "user.contact.email"},
    "primary_email_bidx": {**INDEX, "x-blind-index-of": "primary_email"},
    "emails": {**PERSONAL, "x-data-category": "user.contact.email"},
    "primary_phone": {**PERSONAL, "x-data-category": "user.contact.phone_number"},
    "primary_phone_bidx": {**INDEX, "x-blind-index-of": "primary_phone"},
    "phones": {**PERSONAL, "x-data-category": "user.contact.phone_number"},
    "company": {**PERSONAL, "x-data-category": "user.job.organization"},
}


def address(value: str | None) -> str | None:
    """A mailbox address in the form its blind index is computed on (trimmed, lower-case)."""
    return normalise_identity("email", value) if value else None


def phone(value: str | None) -> str | None:
    return normalise_identity("phone", value) if value else None


def parse_addresses(header: str | None) -> list[tuple[str, str]]:
    """(name, normalised address) pairs of an address header (To, Cc, Bcc)."""
    return [(name, address(addr)) for name, addr in email.utils.getaddresses([header or ""]) if addr]


def correspondent(outgoing: bool, sender: str | None, recipients: list[str | None]) -> str | None:
    """The message's data subject: the other party."""
    if outgoing:
        return next((r for r in recipients if r), None)
    return sender
