"""Consent and opt-outs: one warehouse table of what each person allowed, by blind index, that ingestion
and exports read.

`privacy.consent` holds one row per change (workspace, blind index of an identifier, purpose, allowed,
request); the latest row per identifier and purpose wins. It holds no plaintext, and an erasure keeps it:
a suppression list is how an opt-out survives the person's data being deleted and re-collected.
Purposes: `analytics` (usage tracking with identifiers), `ads` (personalised advertising audiences),
`marketing_email`.
"""

from __future__ import annotations

import duckdb

from pipelines.privacy import suppression
from pipelines.privacy.suppression import suppressed_sql
from pipelines.warehouse import table_exists

DATASET = "privacy"
TABLE = "consent"

_DDL = f"""
CREATE SCHEMA IF NOT EXISTS {DATASET};
CREATE TABLE IF NOT EXISTS {DATASET}.{TABLE} (
    workspace_id VARCHAR NOT NULL,
    subject_bidx BLOB NOT NULL,
    purpose VARCHAR NOT NULL,
    allowed BOOLEAN NOT NULL,
    request_id VARCHAR NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);
"""


def ensure_consent_table(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(_DDL)


def withdrawn_sql(con: duckdb.DuckDBPyConnection, purpose: str, catalog: str | None = None) -> str:
    """SELECT (workspace_id, subject_bidx) of identifiers whose latest choice for `purpose` is a refusal, and
    of identities erased earlier (`pipelines.privacy.suppression`): they allow nothing any more.

    `catalog` names an attached warehouse (ingestion reads it read-only from its work database).
    """
    parts = [sql for sql in (suppressed_sql(con, catalog),) if sql]
    if table_exists(con, DATASET, TABLE, catalog):
        prefix = f"{catalog}." if catalog else ""
        parts.append(
            f"SELECT workspace_id, subject_bidx FROM {prefix}{DATASET}.{TABLE} WHERE purpose = '{purpose}' "
            "QUALIFY row_number() OVER (PARTITION BY workspace_id, subject_bidx ORDER BY updated_at DESC) = 1 "
            "AND NOT allowed"
        )
    if not parts:
        return "SELECT NULL::VARCHAR AS workspace_id, NULL::BLOB AS subject_bidx WHERE false"
    return " UNION ".join(f"SELECT * FROM ({p})" for p in parts)


def identified_after_withdrawal(con: duckdb.DuckDBPyConnection, table: str, index_columns: tuple[str, ...]) -> int:
    """Rows of `table` (`dataset.table`, loaded by dlt) loaded after their person withdrew analytics consent or
    was erased, that still carry one of the person's blind indexes in `index_columns`: what ingestion promises
    never happens (such events load without identifiers). 0 while nobody has withdrawn anything."""
    parts = []
    if table_exists(con, DATASET, TABLE):
        parts.append(
            f"SELECT workspace_id, subject_bidx, updated_at AS since FROM {DATASET}.{TABLE} WHERE purpose = 'analytics' "
            "QUALIFY row_number() OVER (PARTITION BY workspace_id, subject_bidx ORDER BY updated_at DESC) = 1 "
            "AND NOT allowed")
    if table_exists(con, suppression.DATASET, suppression.TABLE):
        parts.append(f"SELECT workspace_id, bidx AS subject_bidx, added_at AS since "
                     f"FROM {suppression.DATASET}.{suppression.TABLE}")
    dataset, name = table.split(".")
    if not parts or not table_exists(con, dataset, name):
        return 0
    refused = " UNION ALL ".join(parts)
    matches = " OR ".join(f"t.{c} = r.subject_bidx" for c in index_columns)
    return con.execute(
        f"SELECT count(DISTINCT t.rowid) FROM {table} t JOIN ({refused}) r ON t.workspace_id = r.workspace_id "
        f"AND ({matches}) WHERE to_timestamp(t._dlt_load_id::DOUBLE) > r.since"
    ).fetchall()[0][0]
