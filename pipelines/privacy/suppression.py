"""The suppression list: erased people stay erased when a source offers their data again.

A provider still holding a message or contact of an erased person returns it on the next full resync (an
expired cursor, a reconnect); a tracker file landed again, or an uploaded list, would bring them back too.
Erasure therefore records the blind indexes of every identity it erased (`privacy.suppression`: workspace,
blind index keyed by identifier kind, request id, time — no plaintext; the keys that made the blind
indexes are the workspace's, which erasure keeps), and every source consults the list before loading:

* event ingestion reads it with the consent table (`pipelines.privacy.consent.withdrawn_sql`): a line of an
  erased person loads without identifiers, as if the tracker had sent `consent.analytics = false`;
* the mail syncs drop the rows whose subject or identifier is suppressed in their shared staging
  (`pipelines.mail_common.stage`), through `without_suppressed` below, which later sources call too.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
from dlt.common.schema.typing import TTableSchemaColumns

from pipelines.privacy.categories import SHARED_CATEGORIES, declaration
from pipelines.sql import ident, literal
from pipelines.warehouse import table_exists

DATASET = "privacy"
TABLE = "suppression"
# The copy a source's work database holds while it stages rows.
LOCAL_TABLE = "suppressed_identities"

_DDL = f"""
CREATE SCHEMA IF NOT EXISTS {DATASET};
CREATE TABLE IF NOT EXISTS {DATASET}.{TABLE} (
    workspace_id VARCHAR NOT NULL,
    bidx BLOB NOT NULL,
    request_id VARCHAR NOT NULL,
    added_at TIMESTAMPTZ NOT NULL
);
"""


def suppress(con: duckdb.DuckDBPyConnection, identities_sql: str, now: dt.datetime) -> int:
    """Add the (request_id, workspace_id, bidx) rows of `identities_sql` to the list; returns rows added."""
    con.execute(_DDL)
    before = con.execute(f"SELECT count(*) FROM {DATASET}.{TABLE}").fetchall()[0][0]
    con.execute(f"INSERT INTO {DATASET}.{TABLE} SELECT DISTINCT i.workspace_id, i.bidx, i.request_id, ?::TIMESTAMPTZ "
                f"FROM ({identities_sql}) i ANTI JOIN {DATASET}.{TABLE} s ON s.workspace_id = i.workspace_id "
                "AND s.bidx = i.bidx", [now])
    return con.execute(f"SELECT count(*) FROM {DATASET}.{TABLE}").fetchall()[0][0] - before


def suppressed_sql(con: duckdb.DuckDBPyConnection, catalog: str | None = None) -> str | None:
    """SELECT (workspace_id, subject_bidx) of the suppressed identities, or None while the list is empty.
    `catalog` names an attached warehouse."""
    if not table_exists(con, DATASET, TABLE, catalog):
        return None
    prefix = f"{catalog}." if catalog else ""
    return f"SELECT workspace_id, bidx AS subject_bidx FROM {prefix}{DATASET}.{TABLE}"


def load_suppression_list(con: duckdb.DuckDBPyConnection, warehouse_path: str | Path | None, *,
                          catalog: str | None = None) -> None:
    """Copy the warehouse's list (blind indexes only) into the work database behind `con` as
    `LOCAL_TABLE`, read-only: a source stages against it without holding the warehouse open. `catalog` names
    the warehouse already attached to `con` (read-only), so a caller reading more from it attaches it once."""
    con.execute(f"CREATE OR REPLACE TEMP TABLE {LOCAL_TABLE} (workspace_id VARCHAR, bidx BLOB)")
    if catalog is None:
        if not warehouse_path or not Path(warehouse_path).exists():
            return
        con.execute(f"ATTACH {literal(str(warehouse_path))} AS suppression_wh (READ_ONLY)")
    try:
        listed = suppressed_sql(con, catalog or "suppression_wh")
        if listed:
            con.execute(f"INSERT INTO {LOCAL_TABLE} SELECT workspace_id, subject_bidx FROM ({listed})")
    finally:
        if catalog is None:
            con.execute("DETACH suppression_wh")


def without_suppressed(con: duckdb.DuckDBPyConnection, source: str, columns: TTableSchemaColumns, cipher, *,
                       table: str, workspace_column: str = "workspace_id") -> tuple[str, int]:
    """A relation of `source`'s plaintext rows (as `pipelines.privacy.protect.protect` takes them) without
    those whose subject or any identifier blind-indexes to a suppressed identity of their workspace, and how
    many were dropped. Needs `load_suppression_list` first. Each distinct value is indexed once."""
    decl = declaration(columns)
    plain = [c for c in dict.fromkeys([*decl.subject_of, *decl.blind_indexes.values()])
             if decl.kind_of(c) not in SHARED_CATEGORIES]
    if not plain or not con.execute(f"SELECT count(*) FROM {LOCAL_TABLE}").fetchall()[0][0]:
        return source, 0
    ws = ident(workspace_column)
    anti = []
    for column in plain:
        values = con.sql(f"SELECT DISTINCT {ws} AS ws, {ident(column)} AS v FROM {source} "
                         f"WHERE {ident(column)} IS NOT NULL").to_arrow_table()
        hashed = values.append_column(  # noqa: F841 - read by DuckDB's replacement scan
            "bidx", cipher.blind_index_many(values.column("ws"), values.column("v"), kind=decl.kind_of(column)))
        lookup = f"_suppressed_{table}_{column}"
        con.execute(f"CREATE OR REPLACE TEMP TABLE {lookup} AS SELECT h.ws, h.v FROM hashed h "
                    f"SEMI JOIN {LOCAL_TABLE} s ON s.workspace_id = h.ws AND s.bidx = h.bidx")
        anti.append(f"ANTI JOIN {lookup} ON {lookup}.ws = s.{ws} AND {lookup}.v = s.{ident(column)}")
    kept = f"_unsuppressed_{table}"
    con.execute(f"CREATE OR REPLACE TEMP TABLE {kept} AS SELECT s.* FROM {source} s {' '.join(anti)}")
    dropped = (con.execute(f"SELECT count(*) FROM {source}").fetchall()[0][0]
               - con.execute(f"SELECT count(*) FROM {kept}").fetchall()[0][0])
    return kept, dropped
