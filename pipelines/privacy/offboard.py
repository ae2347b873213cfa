"""Offboarding a workspace: a CRM customer who closes their account is erased as a whole.

The order is that of a person's erasure, so a crash at any point is finished by running it again: the
workspace's keys go first (every ciphertext of the workspace, in the warehouse, its snapshot and any backup,
is noise from then on), then every landed line of the workspace, every warehouse row carrying its id (all
datasets: sources, dlt staging copies, SQL models, consent and suppression lists), its mail connections,
its access exports and pending requests, and finally the analysts' snapshot is republished without it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pyarrow as pa

from pipelines.catalog import LANDING_ZONES
from pipelines.privacy.audit import AuditLog
from pipelines.privacy.categories import TRACKER_KINDS, VERIFIED_KINDS, declaration, stored_declarations
from pipelines.privacy.protect import value_context
from pipelines.privacy.requests import Inbox, remove_export
from pipelines.privacy.scrub import scrub_landing
from pipelines.sql import ident, qualified
from pipelines.warehouse import publish_snapshot
from pipelines.workspaces import UNATTRIBUTED_WORKSPACE, WORKSPACE_ID_PATTERN

ACTOR = "privacy.offboarding"


@dataclass
class OffboardReport:
    """Counts of one offboarding (for the CLI and the audit log): never data."""

    keys_destroyed: int = 0
    rows_by_table: dict[str, int] = field(default_factory=dict)
    landing_lines_removed: int = 0
    landing_files_rewritten: int = 0
    landing_files_removed: int = 0  # files holding only the workspace's lines: removed, not left empty
    connections_removed: int = 0
    exports_removed: int = 0
    requests_closed: int = 0
    snapshot_tables: int = 0


def check_workspace(workspace_id: str) -> None:
    """Refuse what is not one customer's workspace id (a typo must not reach a destructive step)."""
    if not re.fullmatch(WORKSPACE_ID_PATTERN, workspace_id or "") or workspace_id == UNATTRIBUTED_WORKSPACE:
        raise ValueError("not a customer workspace id")


def offboard_workspace(workspace_id: str, *, warehouse_path: Path, cipher, inbox: Inbox, audit: AuditLog,
                       landing_urls: dict[str, str], exports_dir: Path, registry=None,
                       snapshot: Path | None = None,
                       requested_by: str = "cli") -> OffboardReport:
    """Erase everything held for `workspace_id`; `registry` is the connection registry (every
    provider's connections), `snapshot` the analysts' snapshot file (republished when it exists)."""
    check_workspace(workspace_id)
    report = OffboardReport()
    exists = Path(warehouse_path).exists()
    copies = pa.table({"workspace_id": pa.array([], pa.string()), "bidx": pa.array([], pa.binary())})
    if exists:  # read while the workspace's keys still exist
        with duckdb.connect(str(warehouse_path), read_only=True) as con:
            copies = _unattributed_copies(con, cipher, workspace_id)
    report.keys_destroyed = cipher.destroy_workspace(workspace_id)
    report.keys_destroyed += cipher.destroy_subjects_many(copies.column("workspace_id"), copies.column("bidx"))
    for zone in LANDING_ZONES:
        if zone.name in landing_urls:
            scrubbed = scrub_landing(zone, landing_urls[zone.name], copies, cipher, frozenset({workspace_id}))
            report.landing_lines_removed += scrubbed.lines_removed
            report.landing_files_rewritten += scrubbed.files_rewritten
            report.landing_files_removed += scrubbed.files_removed
    if exists:
        with duckdb.connect(str(warehouse_path)) as con:
            report.rows_by_table = _delete_rows(con, workspace_id, copies)
    if registry is not None:
        report.connections_removed = len(registry.forget_workspace(workspace_id))
    for row in inbox.all():
        if row["workspace_id"] != workspace_id:
            continue
        if row["export_path"]:
            report.exports_removed += remove_export(exports_dir, row["request_id"])
            inbox.forget_export(row["request_id"], "removed when the workspace was offboarded")
        if row["status"] == "received":
            inbox.finish(row["request_id"], "rejected", "the workspace was offboarded: nothing is held any more")
            report.requests_closed += 1
    if snapshot is not None and Path(snapshot).exists():
        with duckdb.connect(str(warehouse_path)) as con:
            report.snapshot_tables = len(publish_snapshot(con, Path(snapshot)))
    audit.append(actor=ACTOR, action="workspace.offboarded", workspace_id=workspace_id, tables=report.rows_by_table,
                 counts={"keys_destroyed": report.keys_destroyed, "landing_lines_removed": report.landing_lines_removed,
                         "connections_removed": report.connections_removed, "exports_removed": report.exports_removed,
                         "requests_closed": report.requests_closed, "requested_by": requested_by})
    return report


def _unattributed_copies(con: duckdb.DuckDBPyConnection, cipher, workspace_id: str) -> pa.Table:
    """(workspace_id, bidx) under `_unattributed` of every identifier (user, cookie, device id, e-mail, phone)
    the workspace holds: broken lines that could not be attributed but carry its people's identifiers go
    with it, as they go with a person's erasure."""
    found: dict[str, set[str]] = {}
    for table, columns in stored_declarations(con).items():
        decl = declaration(columns)
        wanted = [c for c, kind in decl.encrypted.items() if kind in VERIFIED_KINDS | TRACKER_KINDS]
        if "workspace_id" not in columns or not wanted:
            continue
        ref = ident(decl.subject_ref) if decl.subject_ref else "NULL::BLOB"
        for column in wanted:
            rows = con.execute(f"SELECT {ref}, {ident(column)} FROM {qualified(table)} WHERE workspace_id = ? "
                               f"AND {ident(column)} IS NOT NULL", [workspace_id]).fetchall()
            plain = cipher.decrypt(workspace_id, [r[1] for r in rows], subject_refs=[r[0] for r in rows],
                                   context=value_context(table, column)).to_pylist()
            found.setdefault(decl.encrypted[column], set()).update(p for p in plain if p is not None)
    bidxs = [b for kind, values in found.items()
             for b in cipher.blind_index(UNATTRIBUTED_WORKSPACE, sorted(values), kind=kind).to_pylist()]
    return pa.table({"workspace_id": pa.array([UNATTRIBUTED_WORKSPACE] * len(bidxs), pa.string()),
                     "bidx": pa.array(bidxs, pa.binary())})


def _delete_rows(con: duckdb.DuckDBPyConnection, workspace_id: str, copies: pa.Table) -> dict[str, int]:
    """Delete the workspace's rows from every base table with a `workspace_id` column, and the unattributed
    rows holding one of its identifiers (`copies`), in one transaction."""
    tables = con.execute(
        "SELECT c.table_schema, c.table_name FROM information_schema.columns c JOIN information_schema.tables t "
        "USING (table_catalog, table_schema, table_name) WHERE c.column_name = 'workspace_id' "
        "AND t.table_type = 'BASE TABLE' AND c.table_catalog = current_database() ORDER BY 1, 2"
    ).fetchall()
    deleted: dict[str, int] = {}
    con.execute("BEGIN")
    for schema, table in tables:
        count = con.execute(f"DELETE FROM {ident(schema)}.{ident(table)} WHERE workspace_id = ?",
                            [workspace_id]).fetchall()[0][0]
        if count:
            deleted[f"{schema}.{table}"] = count
    for table, columns in stored_declarations(con).items():
        keys = declaration(columns).identity_keys
        if "workspace_id" in columns and keys and copies.num_rows:
            match = " OR ".join(f"{ident(k)} IN (SELECT bidx FROM copies)" for k in keys)
            count = con.execute(f"DELETE FROM {qualified(table)} WHERE workspace_id = ? AND ({match})",
                                [UNATTRIBUTED_WORKSPACE]).fetchall()[0][0]
            if count:
                deleted[table] = deleted.get(table, 0) + count
    con.execute("COMMIT")
    con.execute("CHECKPOINT")
    return deleted
