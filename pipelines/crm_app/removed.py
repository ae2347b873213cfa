"""Rows the app deleted outright (a hard delete: the row is gone, no `deleted_at` was set), found by comparing
keys: after a table's changed rows are read, the keys the warehouse holds are compared with every key the app
still has (one key-only query per table and sync), and each key the app no longer has becomes a tombstone.

A tombstone is a row of the table with its key, workspace and `deleted_at` (the sync's time) and no cursor
value, so it takes the soft-delete path from there: dlt's `hard_delete` hint removes the row in the merge, it is
counted as deleted, and a user's tombstone (their e-mail and phone decrypted from the warehouse, in memory only)
files the same erasure request as an account closed by `deleted_at`.

The keys are taken after the changed rows were read, so a row the app added meanwhile is never taken for a
deleted one; a row deleted while its update was being read is removed by the next sync. A table that is
not in the warehouse yet has nothing to remove.

A table that reads empty or nearly so through a fault (a URL naming an empty database, a lost grant, a
truncated replica) looks exactly like one whose rows were all deleted, and removing them (and filing an
erasure for every user) cannot be undone. So `RemovalGuard` refuses a table's removals when they would take
more than a share of its mirrored rows: none of them is removed, its changed rows still load, and the sync
ends with `RemovalsRefused` (table and counts, no value) until an operator allows that table's removals for
one sync.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa

from pipelines.crm_app.settings import (
    ALLOW_REMOVALS_ENV,
    CURSOR,
    DATASET_NAME,
    REMOVAL_GUARD_MIN_ROWS,
    REMOVAL_GUARD_SHARE,
    SOFT_DELETE,
    AppTable,
)
from pipelines.errors import values_withheld
from pipelines.privacy.categories import declaration
from pipelines.privacy.protect import value_context
from pipelines.sql import ident, qualified
from pipelines.warehouse import table_exists

# The table whose deleted rows are closed accounts, and the identifiers their erasure requests need.
ACCOUNTS = "users"
ACCOUNT_IDENTIFIERS = ("email", "phone")


ALL_TABLES = "*"


@dataclass(frozen=True)
class Refusal:
    """A table whose removals the guard refused: counts only."""

    table: str
    mirrored: int
    missing: int
    max_share: float

    def __str__(self) -> str:
        return (f"{self.table}: {self.missing:,} of its {self.mirrored:,} mirrored rows "
                f"({self.missing / self.mirrored:.0%}) are no longer in the app, more than the "
                f"{self.max_share:.0%} a sync may remove")


class RemovalsRefused(RuntimeError):
    """A sync found more rows gone from the app than it may remove; it removed none of them."""

    def __init__(self, refusals: list[Refusal]) -> None:
        self.refusals = list(refusals)
        tables = ",".join(r.table for r in self.refusals)
        super().__init__(
            "refused to remove rows deleted in the app: " + "; ".join(map(str, self.refusals)) + ". Nothing was "
            "removed from these tables and no erasure was filed for them; the rest of the sync was loaded. A "
            "table reading empty is usually a fault (wrong database URL, missing grant, truncated replica): "
            "check the app database. If the deletions are real, allow them for one sync: "
            f"`python -m pipelines.crm_app --allow-removals {tables}`, or {ALLOW_REMOVALS_ENV}={tables} "
            "(the `allow_removals` setting of the crm_app resource, also settable in a run's config).")


@dataclass(frozen=True)
class RemovalGuard:
    """When a sync may remove a table's rows deleted outright: always while the table holds fewer than
    `min_rows` mirrored rows or is `allowed` (a name, or `*` for every table), else only up to `max_share`
    of its mirrored rows."""

    max_share: float = REMOVAL_GUARD_SHARE
    min_rows: int = REMOVAL_GUARD_MIN_ROWS
    allowed: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        if not 0 <= self.max_share <= 1 or self.min_rows < 0:
            raise ValueError("the removal guard needs a share between 0 and 1 and a non-negative row count")

    @classmethod
    def allowing(cls, tables: str | None, **settings) -> "RemovalGuard":
        """A guard allowing the tables a comma-separated setting names (empty: none)."""
        return cls(allowed=frozenset(t.strip() for t in (tables or "").split(",") if t.strip()), **settings)

    def check(self, table: str, mirrored: int, missing: int) -> Refusal | None:
        """The refusal of removing `missing` of `mirrored` rows of `table`, or None when they may go."""
        if table in self.allowed or ALL_TABLES in self.allowed or mirrored < self.min_rows:
            return None
        if missing <= self.max_share * mirrored:
            return None
        return Refusal(table, mirrored, missing, self.max_share)


def tombstones(connection: sa.Connection, source: sa.Table, table: AppTable, warehouse_path: Path | None,
               cipher, now: dt.datetime, guard: RemovalGuard) -> pa.Table | Refusal | None:
    """The warehouse's rows of `table` whose key `source` (the app's table) no longer holds, as tombstones; the
    guard's refusal instead when they are too many; None when there are none."""
    if warehouse_path is None or not warehouse_path.exists():
        return None
    decl = declaration(table.declared)
    identifiers = [c for c in ACCOUNT_IDENTIFIERS if table.name == ACCOUNTS]
    with duckdb.connect(str(warehouse_path), read_only=True) as wh:
        if not table_exists(wh.cursor(), DATASET_NAME, table.name):
            return None
        extra = [decl.subject_ref, *identifiers] if identifiers else []
        selected = ", ".join(ident(c) for c in dict.fromkeys(("workspace_id", table.key, *extra)))
        held = wh.sql(f"SELECT {selected} FROM {qualified(f'{DATASET_NAME}.{table.name}')}").to_arrow_table()
    if not len(held):
        return None
    live = pa.array(connection.execute(sa.select(source.c[table.key])).scalars().all(), pa.string())
    gone = held.filter(pc.invert(pc.is_in(held.column(table.key), value_set=live)))
    if not len(gone):
        return None
    refusal = guard.check(table.name, len(held), len(gone))
    if refusal is not None:
        return refusal
    columns = {"workspace_id": gone.column("workspace_id"), table.key: gone.column(table.key)}  # workspaces: one column
    with values_withheld(f"reading the deleted rows of {table.name}"):
        for name in identifiers:
            columns[name] = cipher.decrypt_many(gone.column("workspace_id"), gone.column(decl.subject_ref),
                                                gone.column(name), value_context(table.name, name))
    stamp = pa.timestamp("us", tz="UTC")
    columns[CURSOR] = pa.nulls(len(gone), stamp)
    columns[SOFT_DELETE] = pa.array([now] * len(gone), stamp)
    return pa.table(columns)
