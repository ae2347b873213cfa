"""Graph message and contact JSON as plaintext rows of `outlook_messages` / `outlook_contacts`."""

from __future__ import annotations

import datetime as dt
import json
from html.parser import HTMLParser
from typing import Any

from pipelines.mail_common.columns import address, correspondent, phone
from pipelines.mail_common.recipients import RECIPIENTS_FIELD, recipient_rows

_BREAKS = frozenset({"p", "br", "div", "li", "tr", "h1", "h2", "h3", "h4"})


class _Text(HTMLParser):
    """Visible text of an HTML body, a line per block element (scripts and styles skipped)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lines: list[str] = [""]
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag in ("script", "style"):
            self._skip += 1
        elif tag in _BREAKS and self.lines[-1]:
            self.lines.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self._skip = max(0, self._skip - 1)
        elif tag in _BREAKS and self.lines[-1]:
            self.lines.append("")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.lines[-1] += data


def html_text(markup: str) -> str:
    parser = _Text()
    parser.feed(markup)
    parser.close()
    return "\n".join(line.strip() for line in parser.lines if line.strip())


def _when(value: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def _addr(recipient: dict[str, Any] | None) -> tuple[str | None, str | None]:
    mailbox = (recipient or {}).get("emailAddress") or {}
    return mailbox.get("name") or None, address(mailbox.get("address"))


def message_row(item: dict[str, Any], folder: str) -> dict[str, Any]:
    """A Graph `message` as a row, its recipients' rows under RECIPIENTS_FIELD; the body is kept as text
    (HTML bodies are reduced to their text)."""
    sender_name, sender = _addr(item.get("from") or item.get("sender"))
    to, cc, bcc = ([_addr(r)[1] for r in item.get(f"{role}Recipients") or []] for role in ("to", "cc", "bcc"))
    body = item.get("body") or {}
    content, kind = body.get("content"), (body.get("contentType") or "text").lower()
    outgoing = folder == "sentitems"
    return {
        "message_id": item["id"], "thread_id": item.get("conversationId"), "folder": folder,
        "received_at": _when(item.get("receivedDateTime")), "sent_at": _when(item.get("sentDateTime")),
        "size_bytes": None, "outgoing": outgoing, "is_read": item.get("isRead"), "importance": item.get("importance"),
        "categories": json.dumps(item.get("categories") or []), "body_type": kind,
        "correspondent": correspondent(outgoing, sender, to),
        "from_name": sender_name, "from_address": sender, RECIPIENTS_FIELD: recipient_rows(to=to, cc=cc, bcc=bcc),
        "subject": item.get("subject"), "snippet": item.get("bodyPreview") or None,
        "body_text": (html_text(content) if kind == "html" else content) if content else None,
    }


def contact_row(item: dict[str, Any]) -> dict[str, Any]:
    """A Graph `contact` as a row."""
    emails = [address(e.get("address")) for e in item.get("emailAddresses") or [] if e.get("address")]
    phones = [phone(p) for p in [item.get("mobilePhone"), *(item.get("businessPhones") or []),
                                 *(item.get("homePhones") or [])] if p]
    return {
        "contact_id": item["id"], "etag": item.get("changeKey"), "updated_at": _when(item.get("lastModifiedDateTime")),
        "display_name": item.get("displayName"), "given_name": item.get("givenName"),
        "family_name": item.get("surname"),
        "primary_email": emails[0] if emails else None, "emails": json.dumps(emails) if emails else None,
        "primary_phone": phones[0] if phones else None, "phones": json.dumps(phones) if phones else None,
        "company": item.get("companyName"),
    }
