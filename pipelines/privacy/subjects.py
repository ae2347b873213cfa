"""Finding every stored row of a set of people, through blind indexes only, in a few set-based joins.

A request names a person by one identifier; their rows may carry others (the cookie id and device id seen
with a user id). So the search runs twice: rows matching the given identifiers, then rows matching any
identifier found on those rows (one hop of identity stitching, as a tracker's identity graph does). Each
step is one equi-join per identifier column, so a batch of 1,000 people costs about as much as one.
Nothing is decrypted to search.
"""

from __future__ import annotations

import duckdb
import pyarrow as pa
from dlt.common.schema.typing import TTableSchemaColumns

from pipelines.privacy.categories import declaration
from pipelines.sql import ident, qualified
from pipelines.warehouse import table_exists

TARGETS = "dsr_targets"  # (request_id, workspace_id, bidx): the identifiers given
IDENTITIES = "dsr_identities"  # the same plus every identifier stitched to them


def _stored_with(con: duckdb.DuckDBPyConnection, tables: dict[str, TTableSchemaColumns], pick) -> dict:
    """Stored tables with a workspace column for which `pick(declaration)` is not empty, with what it picked."""
    found = {}
    for table, columns in tables.items():
        dataset, name = table.split(".", 1)
        picked = pick(declaration(columns))
        if picked and "workspace_id" in columns and table_exists(con, dataset, name):
            found[table] = picked
    return found


def searchable_tables(con: duckdb.DuckDBPyConnection, tables: dict[str, TTableSchemaColumns]) -> dict[str, list[str]]:
    """Stored tables with a workspace column and at least one identity column, with those columns."""
    return _stored_with(con, tables, lambda decl: decl.identity_keys)


def hits_table(table: str, kind: str = "person") -> str:
    """The temp table holding (rid, request_id) of `table`'s rows that belong to the requests' people (or,
    kind `connection`, to the requests' disconnected accounts)."""
    return ("dsr_hits_" if kind == "person" else f"dsr_{kind}_hits_") + table.replace(".", "__")


def connection_tables(con: duckdb.DuckDBPyConnection, tables: dict[str, TTableSchemaColumns]) -> dict[str, str]:
    """Stored tables with a workspace column and a declared connection column, with that column."""
    return _stored_with(con, tables, lambda decl: decl.connection)


def find_connection_rows(con: duckdb.DuckDBPyConnection, cipher, tables: dict[str, str],
                         request_ids: list[str]) -> None:
    """Fill one connection hits table per table for the given requests, whose TARGETS bidx is the blind index
    of a connection id. The connection ids held are few: each distinct one is indexed once and joined."""
    marks = ", ".join("'" + r.replace("'", "''") + "'" for r in request_ids)
    for table, column in tables.items():
        held = con.execute(f"SELECT DISTINCT workspace_id, {ident(column)} FROM {qualified(table)} "
                           f"WHERE {ident(column)} IS NOT NULL").fetchall()
        if not held:  # an empty table (a merge's truncated staging copy) still gets its empty hits table
            con.execute(f"CREATE OR REPLACE TEMP TABLE {hits_table(table, 'connection')} (rid BIGINT, request_id VARCHAR)")
            continue
        indexed = pa.table({  # noqa: F841 - read by DuckDB's replacement scan
            "workspace_id": pa.array([w for w, _ in held], pa.string()),
            "connection_id": pa.array([c for _, c in held], pa.string()),
            "bidx": cipher.blind_index_many([w for w, _ in held], [c for _, c in held]),
        })
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE {hits_table(table, 'connection')} AS SELECT t.rowid AS rid, g.request_id "
            f"FROM {qualified(table)} t JOIN indexed i ON t.workspace_id = i.workspace_id "
            f"AND t.{ident(column)} = i.connection_id JOIN {TARGETS} g ON g.workspace_id = i.workspace_id "
            f"AND g.bidx = i.bidx WHERE g.request_id IN ({marks})").fetchall()


def _match(table: str, ids: list[str], against: str) -> str:
    return " UNION ".join(
        f"SELECT t.rowid AS rid, g.request_id FROM {qualified(table)} t JOIN {against} g "
        f"ON t.workspace_id = g.workspace_id AND t.{ident(c)} = g.bidx"
        for c in ids
    )


def find_rows(con: duckdb.DuckDBPyConnection, tables: dict[str, list[str]]) -> dict[str, int]:
    """Fill one hits table per searchable table from TARGETS (stitching into IDENTITIES); rows per table."""
    con.execute(f"CREATE OR REPLACE TEMP TABLE {IDENTITIES} AS SELECT DISTINCT * FROM {TARGETS}")
    stitched = []
    for table, ids in tables.items():
        first = _match(table, ids, TARGETS)
        stitched += [
            f"SELECT h.request_id, t.workspace_id, t.{ident(c)} AS bidx FROM ({first}) h "
            f"JOIN {qualified(table)} t ON t.rowid = h.rid WHERE t.{ident(c)} IS NOT NULL"
            for c in ids
        ]
    if stitched:
        con.execute(f"INSERT INTO {IDENTITIES} SELECT * FROM ({' UNION '.join(stitched)}) "
                    f"EXCEPT SELECT * FROM {IDENTITIES}")
    counts = {}
    for table, ids in tables.items():
        con.execute(f"CREATE OR REPLACE TEMP TABLE {hits_table(table)} AS {_match(table, ids, IDENTITIES)}")
        counts[table] = con.execute(f"SELECT count(*) FROM {hits_table(table)}").fetchone()[0]
    return counts
