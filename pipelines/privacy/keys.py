"""Crypto-shredding of subjects that no stored row needs any more.

Shared by retention (subjects whose every record expired) and erasure (subjects asked to be forgotten):
a subject key is destroyed only when no table still holds a row referring to it, so a person whose older
events were anonymised keeps their recent ones readable.
"""

from __future__ import annotations

import duckdb
from dlt.common.schema.typing import TTableSchemaColumns

from pipelines.privacy.categories import declaration
from pipelines.privacy.sql import ident, qualified
from pipelines.warehouse import table_exists


def subject_refs_sql(tables: dict[str, TTableSchemaColumns], con: duckdb.DuckDBPyConnection) -> str:
    """A UNION of (workspace_id, subject_ref) over every stored table that has a subject reference."""
    parts = []
    for table, columns in tables.items():
        subject = declaration(columns).subject_ref
        dataset, name = table.split(".", 1)
        if subject and table_exists(con, dataset, name):
            parts.append(f"SELECT workspace_id, {ident(subject)} AS subject_ref FROM {qualified(table)} "
                         f"WHERE {ident(subject)} IS NOT NULL")
    return " UNION ALL ".join(parts) or "SELECT NULL::VARCHAR AS workspace_id, NULL::BLOB AS subject_ref WHERE false"


def destroy_unreferenced_subjects(
    con: duckdb.DuckDBPyConnection, candidates: str, tables: dict[str, TTableSchemaColumns], cipher
) -> int:
    """Destroy the keys of the (workspace_id, subject_ref) rows of table `candidates` that no row of `tables`
    refers to; returns how many keys existed and were destroyed."""
    rows = con.execute(
        f"SELECT c.workspace_id, list(c.subject_ref) FROM {candidates} c "
        f"ANTI JOIN ({subject_refs_sql(tables, con)}) r "
        "ON r.workspace_id = c.workspace_id AND r.subject_ref = c.subject_ref GROUP BY c.workspace_id"
    ).fetchall()
    return sum(cipher.destroy_subjects(workspace, [bytes(r) for r in refs]) for workspace, refs in rows)
