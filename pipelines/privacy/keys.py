"""Crypto-shredding of subjects that no stored row needs any more.

Shared by retention (subjects whose every record expired) and erasure (subjects asked to be forgotten):
a subject key is destroyed only when no table still holds a row referring to it, so a person whose older
events were anonymised keeps their recent ones readable.
"""

from __future__ import annotations

import duckdb
from dlt.common.schema.typing import TTableSchemaColumns

from pipelines.privacy.categories import declaration
from pipelines.sql import ident, qualified
from pipelines.warehouse import table_exists


def _still_referenced_sql(candidates: str, tables: dict[str, TTableSchemaColumns], con: duckdb.DuckDBPyConnection) -> str:
    """The candidates that some row of `tables` still refers to: a semi-join per table, whose hash table is
    built on the (small) candidates rather than on the (large) tables."""
    parts = []
    for table, columns in tables.items():
        subject = declaration(columns).subject_ref
        dataset, name = table.split(".", 1)
        if subject and "workspace_id" in columns and table_exists(con, dataset, name):
            parts.append(f"SELECT t.workspace_id, t.{ident(subject)} AS subject_ref FROM {qualified(table)} t "
                         f"SEMI JOIN {candidates} c ON c.workspace_id = t.workspace_id AND c.subject_ref = t.{ident(subject)}")
    return " UNION ".join(parts) or "SELECT NULL::VARCHAR AS workspace_id, NULL::BLOB AS subject_ref WHERE false"


def destroy_unreferenced_subjects(
    con: duckdb.DuckDBPyConnection, candidates: str, tables: dict[str, TTableSchemaColumns], cipher
) -> int:
    """Destroy the keys of the (workspace_id, subject_ref) rows of table `candidates` that no row of `tables`
    refers to; returns how many keys existed and were destroyed."""
    gone = con.execute(
        f"SELECT workspace_id, subject_ref FROM {candidates} "
        f"EXCEPT SELECT * FROM ({_still_referenced_sql(candidates, tables, con)})"
    ).fetchall()
    return cipher.destroy_subjects_many([w for w, _ in gone], [bytes(r) for _, r in gone])
