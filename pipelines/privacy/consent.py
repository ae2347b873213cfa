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
