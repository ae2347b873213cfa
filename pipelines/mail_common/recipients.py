"""A message's recipients as rows of their own, each person's address under their own data subject.

A message row is encrypted under its correspondent's key, so an address of someone else kept inside it
(a further To recipient, Cc, Bcc) could be neither found by that person's `--email` request nor erased
with their key. Here every recipient is one row of a child table (`<provider>_message_recipients`): the
normalised address encrypted under its own subject key, its blind index and subject reference, which the
generic privacy engine finds, exports, erases and expires like any other row. The child table is merged on
(connection_id, message_id) (`pipelines.mail_common.stage.ChildStream`), so it follows its message exactly.
"""

from __future__ import annotations

from typing import Iterable

from pipelines.mail_common.stage import INDEX, PERSONAL, ChildStream, child_table

# The key of a plaintext message record holding its recipient rows (not a column of the message table).
RECIPIENTS_FIELD = "recipients"
ROLES = ("to", "cc", "bcc")

RECIPIENT_COLUMNS = child_table("message_id", {
    "role": {"data_type": "text", "nullable": True},  # to, cc or bcc (null only on a deletion marker)
    "position": {"data_type": "bigint", "nullable": True},  # order within its role, from 0
    "received_at": {"data_type": "timestamp", "nullable": True},  # the message's: what retention counts by
    "subject_ref": {"data_type": "binary", "nullable": True, "x-subject-ref": True, "x-subject-of": ["address"]},
    "address": {**PERSONAL, "x-data-category": "user.contact.email"},
    "address_bidx": {**INDEX, "x-blind-index-of": "address"},
})


def recipients_of(table: str) -> ChildStream:
    """The recipients child table `table` of a provider's message stream."""
    return ChildStream(table, RECIPIENT_COLUMNS, RECIPIENTS_FIELD, inherited=("received_at",))


def recipient_rows(**by_role: Iterable[str | None]) -> list[dict[str, object]]:
    """One row per normalised address, by role (`to=`, `cc=`, `bcc=`) and position within it."""
    rows: list[dict[str, object]] = []
    for role in ROLES:
        kept = [a for a in by_role.get(role, ()) if a]
        rows += [{"role": role, "position": i, "address": a} for i, a in enumerate(kept)]
    return rows
