"""Finding every stored row of a set of people, through blind indexes only, in a few set-based joins.

A request names a person by one identifier; their rows may carry others (the cookie id and device id seen
with a user id). So the search runs twice: rows matching the given identifiers, then rows matching any
identifier found on those rows (one hop of identity stitching, as a tracker's identity graph does). Each
step is one equi-join per identifier column, so a batch of 1,000 people costs about as much as one.
Nothing is decrypted to search.
"""

from __future__ import annotations

import duckdb
from dlt.common.schema.typing import TTableSchemaColumns

from pipelines.privacy.categories import declaration
from pipelines.sql import ident, qualified
from pipelines.warehouse import table_exists

TARGETS = "dsr_targets"  # (request_id, workspace_id, bidx): the identifiers given
IDENTITIES = "dsr_identities"  # the same plus every identifier stitched to them


def searchable_tables(con: duckdb.DuckDBPyConnection, tables: dict[str, TTableSchemaColumns]) -> dict[str, list[str]]:
    """Stored tables with a workspace column and at least one identity column, with those columns."""
    found = {}
    for table, columns in tables.items():
        dataset, name = table.split(".", 1)
        ids = declaration(columns).identity_keys
        if ids and "workspace_id" in columns and table_exists(con, dataset, name):
            found[table] = ids
    return found


def hits_table(table: str) -> str:
    """The temp table holding (rid, request_id) of `table`'s rows that belong to the requests' people."""
    return "dsr_hits_" + table.replace(".", "__")


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
