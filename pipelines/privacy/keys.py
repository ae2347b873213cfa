"""Key lifecycle over the warehouse: crypto-shredding of subjects no stored row needs any more, and the
re-encryption a workspace-key rotation needs.

Shredding is shared by retention (subjects whose every record expired) and erasure (subjects asked to be
forgotten): a subject key is destroyed only when no table still holds a row referring to it, so a person
whose older events were anonymised keeps their recent ones readable.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import duckdb
import pyarrow as pa
from dlt.common.schema.typing import TTableSchemaColumns

from pipelines.privacy.categories import declaration
from pipelines.privacy.protect import value_context
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


@dataclass
class WorkspaceRotation:
    """What a workspace-key rotation did (counts only: they go to the audit log)."""

    resumed: bool
    subject_keys_rewrapped: int
    values_reencrypted: dict[str, int] = field(default_factory=dict)


def rotate_workspace_key(con: duckdb.DuckDBPyConnection, tables: dict[str, TTableSchemaColumns], cipher,
                         workspace_id: str, reseal_elsewhere: Mapping[str, Callable[[Any, str], int]]
                         ) -> WorkspaceRotation:
    """Rotate one workspace's key: a new key (subject keys re-wrapped, in the keyring), every value the old
    key encrypted directly (the subject-less ones) re-encrypted in every table of `tables` and by each
    `reseal_elsewhere[store](cipher, workspace_id) -> count` (other stores: the connection registry), then
    the old key shredded. A rotation stopped half-way is resumed by calling this again (decryption reads both
    keys until the end)."""
    started, rewrapped = cipher.begin_workspace_rotation(workspace_id)
    report = WorkspaceRotation(resumed=not started, subject_keys_rewrapped=rewrapped)
    existing = {f"{schema}.{name}" for schema, name in con.execute(
        "SELECT table_schema, table_name FROM information_schema.tables WHERE table_catalog = current_database()"
    ).fetchall()}
    for table, columns in tables.items():
        decl = declaration(columns)
        if decl.encrypted and "workspace_id" in columns and table in existing:
            report.values_reencrypted[table] = _reencrypt_subjectless(con, table, decl, cipher, workspace_id)
    for store, reseal in reseal_elsewhere.items():
        report.values_reencrypted[store] = reseal(cipher, workspace_id)
    cipher.finish_workspace_rotation(workspace_id)
    return report


def _reencrypt_subjectless(con: duckdb.DuckDBPyConnection, table: str, decl, cipher, workspace_id: str) -> int:
    """Re-encrypt the rows of `table` in `workspace_id` that have no subject (their values are under the
    workspace key) in one UPDATE; returns the number of values re-encrypted."""
    no_subject = f"{ident(decl.subject_ref)} IS NULL" if decl.subject_ref else "true"
    columns = list(decl.encrypted)
    rows = con.sql(
        f"SELECT rowid AS rid, {', '.join(ident(c) for c in columns)} FROM {qualified(table)} "
        f"WHERE workspace_id = ? AND {no_subject}", params=[workspace_id]).to_arrow_table()
    if rows.num_rows == 0:
        return 0
    update = {"rid": rows.column("rid")}
    for column in columns:
        context = value_context(table, column)
        plain = cipher.decrypt(workspace_id, rows.column(column), subject_refs=None, context=context)
        update[column] = cipher.encrypt(workspace_id, plain, subjects=None, context=context)
    rotated = pa.table(update)  # noqa: F841 - read by DuckDB's replacement scan
    sets = ", ".join(f"{ident(c)} = rotated.{ident(c)}" for c in columns)
    con.execute(f"UPDATE {qualified(table)} SET {sets} FROM rotated WHERE {qualified(table)}.rowid = rotated.rid").fetchall()
    return sum(rows.num_rows - rows.column(c).null_count for c in columns)
