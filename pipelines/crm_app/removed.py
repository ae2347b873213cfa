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
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa

from pipelines.crm_app.settings import CURSOR, DATASET_NAME, SOFT_DELETE, AppTable
from pipelines.errors import values_withheld
from pipelines.privacy.categories import declaration
from pipelines.privacy.protect import value_context
from pipelines.sql import ident, qualified
from pipelines.warehouse import table_exists

# The table whose deleted rows are closed accounts, and the identifiers their erasure requests need.
ACCOUNTS = "users"
ACCOUNT_IDENTIFIERS = ("email", "phone")


def tombstones(connection: sa.Connection, source: sa.Table, table: AppTable, warehouse_path: Path | None,
               cipher, now: dt.datetime) -> pa.Table | None:
    """The warehouse's rows of `table` whose key `source` (the app's table) no longer holds, as tombstones, or
    None when there are none."""
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
    columns = {"workspace_id": gone.column("workspace_id"), table.key: gone.column(table.key)}  # workspaces: one column
    with values_withheld(f"reading the deleted rows of {table.name}"):
        for name in identifiers:
            columns[name] = cipher.decrypt_many(gone.column("workspace_id"), gone.column(decl.subject_ref),
                                                gone.column(name), value_context(table.name, name))
    stamp = pa.timestamp("us", tz="UTC")
    columns[CURSOR] = pa.nulls(len(gone), stamp)
    columns[SOFT_DELETE] = pa.array([now] * len(gone), stamp)
    return pa.table(columns)
