"""SQLite files that hold secrets or personal data until they are cleared (request inbox, connection registry).

Opened so that a cleared value leaves no copy in the file: secure_delete zeroes freed bytes, and a rollback
journal (not WAL) keeps no stale page copies after the transaction.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path


def connect_private(path: str | Path) -> sqlite3.Connection:
    """A short-lived connection (rows as sqlite3.Row); the file is shared with other processes."""
    con = sqlite3.connect(path, timeout=30)
    con.row_factory = sqlite3.Row
    con.execute("PRAGMA secure_delete = ON")
    con.execute("PRAGMA journal_mode = DELETE")
    return con


class PrivateSqliteFile:
    """A shared SQLite file with a schema: each method of a subclass opens its own short connection."""

    SCHEMA = ""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with closing(self._connect()) as con, con:
            con.executescript(self.SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        return connect_private(self.path)
