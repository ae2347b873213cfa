"""An app table's extracted arrow batches into the rows dlt stores: typed as declared, identifiers normalised,
personal columns encrypted (`pipelines.privacy.protect`).

Runs as a map step of each `sql_table` resource, after dlt's incremental filter, so only changed rows (and the
tombstones of rows deleted outright, `pipelines.crm_app.removed`) are protected. The batch of `users` also
tells which accounts were closed (a `deleted_at` set): their owners' e-mails are kept in memory only until the
load is done, then filed as erasure requests (`AppSync.finish`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from pipelines.crm_app.settings import CURSOR, SOFT_DELETE, AppTable
from pipelines.errors import values_withheld
from pipelines.phones import PHONE_KIND
from pipelines.privacy.categories import declaration
from pipelines.privacy.protect import FieldCipher, plain_schema, protect_table
from pipelines.privacy.requests import normalise_identities

EMAIL_KIND = "user.contact.email"


@dataclass
class TableCounts:
    """What one sync did to one table (counts only)."""

    read: int = 0
    deleted: int = 0  # soft-deleted in the app, or deleted outright (`hard_deleted` of them)
    hard_deleted: int = 0
    suppressed: int = 0
    removals_refused: int = 0  # rows gone from the app that the removal guard kept (`pipelines.crm_app.removed`)

    def as_metadata(self) -> dict[str, int]:
        return {"rows_read": self.read, "rows_deleted": self.deleted, "rows_hard_deleted": self.hard_deleted,
                "rows_suppressed": self.suppressed, "rows_removal_refused": self.removals_refused}


@dataclass(frozen=True)
class ClosedAccount:
    """A user whose account was closed in the app: filed as an erasure request once the load is done."""

    workspace_id: str
    user_id: str
    email: str | None
    phone: str | None


@dataclass
class Protector:
    """Turns batches of every app table into stored rows, counting per table."""

    work: duckdb.DuckDBPyConnection
    cipher: FieldCipher
    counts: dict[str, TableCounts] = field(default_factory=dict)
    closed_accounts: list[ClosedAccount] = field(default_factory=list)

    def __call__(self, table: AppTable, batch: pa.Table) -> pa.Table:
        counts = self.counts.setdefault(table.name, TableCounts())
        with values_withheld(f"protecting {table.name}"):
            plain = typed(table, batch)
            deleted = plain.column(SOFT_DELETE).is_valid()
            tombstones = plain.column(CURSOR).null_count  # rows the app deleted outright (`removed`)
            counts.read += len(plain) - tombstones
            counts.deleted += pc.sum(deleted).as_py() or 0
            counts.hard_deleted += tombstones
            if table.name == "users":
                self._note_closed(plain.filter(deleted))
            out, dropped = protect_table(self.work, plain, table.declared, self.cipher, table=table.name)
        counts.suppressed += dropped
        return out

    def _note_closed(self, closed: pa.Table) -> None:
        for row in closed.select(["workspace_id", "user_id", "email", "phone"]).to_pylist():
            self.closed_accounts.append(ClosedAccount(**row))


def typed(table: AppTable, batch: pa.Table) -> pa.Table:
    """The batch as `plain_schema` of the table's declaration: every declared column in its plain type (missing
    ones null: blind indexes and the subject reference are computed later), identifiers normalised as requests
    normalise them (`normalise_identities`; protection then puts phones in E.164)."""
    schema = plain_schema(table.declared)
    decl = declaration(table.declared)
    kinds = {**decl.encrypted, **{c: decl.kind_of(c) for c in decl.subject_of}}
    columns = []
    for target in schema:
        if target.name in batch.column_names:
            column = batch.column(target.name)
            if pa.types.is_timestamp(column.type) and column.type.tz is None:
                column = column.cast(pa.timestamp(column.type.unit, tz="UTC"))
            column = column.cast(target.type)
        else:
            column = pa.nulls(len(batch), target.type)
        if kinds.get(target.name) == EMAIL_KIND:
            column = normalise_identities("email", column)
        elif kinds.get(target.name) == PHONE_KIND:
            column = normalise_identities("phone", column)
        columns.append(column)
    return pa.Table.from_arrays(columns, schema=schema)
