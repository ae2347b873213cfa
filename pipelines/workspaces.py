"""Workspace ids: the tenant key of every row and of every encryption key, and which ones the platform knows.

The event contract's `workspace_id` pattern is this one (a test holds them equal). Data that cannot be
attributed to a valid workspace (a tracker line with a broken workspace id) is kept under the platform's
own `_unattributed` workspace key, which erasure searches too.

A workspace id in an event is written by a tracker, so it proves nothing: a file of a million made-up ids
would otherwise make a million workspace keys. Only workspaces the platform knows are taken, and
`known_workspaces` is the one place that says which: the workspace registry (a SQLite file the sandbox seeds
with the workspaces it generates events for, and that the CRM app database source `pipelines.crm_app` feeds)
plus the workspaces of the mail connection registry. Events of any other workspace are quarantined as `unknown_workspace`.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Iterable

from pipelines.sqlite_files import PrivateSqliteFile

WORKSPACE_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
UNATTRIBUTED_WORKSPACE = "_unattributed"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS workspaces (
    workspace_id  TEXT PRIMARY KEY,
    source        TEXT NOT NULL,   -- who registered it: 'sandbox', 'crm', 'operator'
    registered_at TEXT NOT NULL
);
"""


class WorkspaceRegistry(PrivateSqliteFile):
    """The registry file (`data/workspaces/workspaces.sqlite`, GTG_WORKSPACES_PATH): SQLite, so the CRM app can
    write it while a pipeline holds DuckDB's lock."""

    SCHEMA = _SCHEMA

    def register(self, workspace_ids: Iterable[str], source: str) -> None:
        """Add workspaces (idempotent: an id already known keeps its first source)."""
        now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        with closing(self._connect()) as con, con:
            con.executemany("INSERT OR IGNORE INTO workspaces VALUES (?, ?, ?)",
                            [(w, source, now) for w in workspace_ids])


def known_workspaces(registry_path: str | Path, connections_path: str | Path | None = None) -> frozenset[str]:
    """Every workspace the platform knows: the registry's and those of the mail connection registry.

    Read-only: files that do not exist yet count as empty (a fresh platform knows no workspace)."""
    known: set[str] = set()
    for path, table in ((registry_path, "workspaces"), (connections_path, "connections")):
        if path is None or not Path(path).exists():
            continue
        with closing(sqlite3.connect(f"{Path(path).resolve().as_uri()}?mode=ro", uri=True, timeout=30)) as con:
            exists = con.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", [table]).fetchone()
            if exists:
                known.update(row[0] for row in con.execute(f"SELECT DISTINCT workspace_id FROM {table}"))
    return frozenset(known - {UNATTRIBUTED_WORKSPACE})
