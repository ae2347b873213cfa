"""The connection registry: which workspace connected which provider account (a Gmail or Outlook mailbox, a
Meta, Google Ads or LinkedIn ad account), its OAuth tokens (encrypted), its sync cursors and its status.
One registry for every provider, so the CRM app, the sensor and erasure of a disconnected account deal
with a single file and a single shape.

SQLite (`data/connections/connections.sqlite`, GTG_CONNECTIONS_PATH), not the warehouse: the CRM app writes a
row when a user connects an account, and must be able to while a pipeline holds DuckDB's single writer lock.
Tokens and the account address are stored only as keyring ciphertext under the workspace key (context
`connections.<column>`), so the file holds nothing a reader could use; the address also has a blind index
(on its normalised form) so a connection can be found by it. Revoking clears the tokens (secure_delete
zeroes the freed bytes). Cursors (Gmail history id, People sync token, Graph delta links, the last insight
day read) are not personal: they are kept as JSON and advanced only after the rows they account for are
loaded, so a crash repeats a sync step (merge makes that harmless) and never skips one.

Statuses: `active`; `erroring` (the last sync failed; retried on schedule); `needs_reauth` (the provider
refused the token: no schedule retries it — retrying cannot help — until the user reconnects and
`reauthorise` stores new tokens); `revoked` (disconnected: tokens and cursors forgotten).
Provider and status are checked here rather than by CHECK constraints, so adding a provider never needs a
table rebuild.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import uuid
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipelines.sqlite_files import PrivateSqliteFile

PROVIDERS = ("gmail", "outlook", "facebook_ads", "google_ads", "linkedin_ads")
STATUSES = ("active", "erroring", "needs_reauth", "revoked")
SYNCABLE = ("active", "erroring")
# The identifier kind of each provider's account, for its blind index: a mailbox address is a person's
# e-mail; an ad account id is the customer's business identifier.
ACCOUNT_KINDS = {"gmail": "user.contact.email", "outlook": "user.contact.email", "facebook_ads": "system.account",
                 "google_ads": "system.account", "linkedin_ads": "system.account"}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS connections (
    connection_id     TEXT PRIMARY KEY,
    workspace_id      TEXT NOT NULL,
    provider          TEXT NOT NULL,                -- one of PROVIDERS
    sandbox           INTEGER NOT NULL DEFAULT 0,   -- 1: served by the local sandbox servers
    account_enc       BLOB,                         -- the provider account's address, encrypted
    account_bidx      BLOB,                         -- blind index of the normalised account
    refresh_token_enc BLOB,                         -- OAuth refresh token, encrypted; NULL once revoked
    access_token_enc  BLOB,                         -- last access token, encrypted; NULL once revoked
    sync_state        TEXT NOT NULL DEFAULT '{}',   -- JSON cursors: history_id, people_sync_token, delta links
    status            TEXT NOT NULL DEFAULT 'active', -- one of STATUSES
    status_detail     TEXT,                         -- an error class or reason, never a value
    created_at        TEXT NOT NULL,
    updated_at        TEXT NOT NULL,
    last_synced_at    TEXT
);
"""


@dataclass(frozen=True)
class Connection:
    """One connected account, without its secrets (those are read through `ConnectionRegistry.tokens`)."""

    connection_id: str
    workspace_id: str
    provider: str
    sandbox: bool
    status: str
    sync_state: dict[str, Any] = field(default_factory=dict)
    status_detail: str | None = None
    last_synced_at: str | None = None


@dataclass(frozen=True)
class Tokens:
    access_token: str | None
    refresh_token: str | None


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class ConnectionRegistry(PrivateSqliteFile):
    """The registry file. Each method opens its own short connection (the app shares the file)."""

    SCHEMA = _SCHEMA

    def __init__(self, path: str | Path) -> None:
        super().__init__(path)
        self._drop_old_constraints()

    def _drop_old_constraints(self) -> None:
        """Registries written before Meta and the ad platforms joined pin provider and status with CHECK
        constraints naming only the mail providers: copy their rows into the current table, in one transaction."""
        with closing(self._connect()) as con, con:
            (sql,) = con.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'connections'").fetchone()
            if "CHECK" not in sql:
                return
            con.execute("ALTER TABLE connections RENAME TO connections_before_checks_dropped")
            con.execute(_SCHEMA.replace("IF NOT EXISTS ", ""))
            con.execute("INSERT INTO connections SELECT * FROM connections_before_checks_dropped")
            con.execute("DROP TABLE connections_before_checks_dropped")

    # -- writes ------------------------------------------------------------------------------------------

    def add(self, cipher, workspace_id: str, provider: str, account: str, refresh_token: str | None,
            access_token: str | None = None, *, sandbox: bool = False, connection_id: str | None = None) -> Connection:
        """Register a connected account; tokens and address are encrypted before they touch the file."""
        if provider not in PROVIDERS:
            raise ValueError(f"unknown provider {provider!r}; expected one of {list(PROVIDERS)}")
        connection_id = connection_id or f"{provider}-{uuid.uuid4().hex[:12]}"
        normalised = account.strip().lower() if ACCOUNT_KINDS[provider] == "user.contact.email" else account.strip()
        account_enc, refresh_enc, access_enc = (
            self._seal(cipher, workspace_id, column, value) for column, value in
            (("account", normalised), ("refresh_token", refresh_token), ("access_token", access_token)))
        bidx = cipher.blind_index(workspace_id, [normalised], kind=ACCOUNT_KINDS[provider]).to_pylist()[0]
        now = _now()
        with closing(self._connect()) as con, con:
            con.execute(
                "INSERT INTO connections (connection_id, workspace_id, provider, sandbox, account_enc, account_bidx, "
                "refresh_token_enc, access_token_enc, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (connection_id, workspace_id, provider, int(sandbox), account_enc, bidx, refresh_enc, access_enc,
                 now, now))
        return self.get(connection_id)

    def save_state(self, connection_id: str, state: dict[str, Any]) -> None:
        """Store the cursors of a completed sync and mark the connection active."""
        now = _now()
        with closing(self._connect()) as con, con:
            con.execute("UPDATE connections SET sync_state = ?, status = 'active', status_detail = NULL, "
                        "updated_at = ?, last_synced_at = ? WHERE connection_id = ? AND status <> 'revoked'",
                        (json.dumps(state, sort_keys=True), now, now, connection_id))

    def mark_erroring(self, connection_id: str, detail: str) -> None:
        """A sync failed: keep the cursors, say why (an error class, never a value)."""
        with closing(self._connect()) as con, con:
            con.execute("UPDATE connections SET status = 'erroring', status_detail = ?, updated_at = ? "
                        "WHERE connection_id = ? AND status <> 'revoked'", (detail, _now(), connection_id))

    def mark_needs_reauth(self, connection_id: str, detail: str) -> None:
        """The provider refused the token (expired or revoked by the user): the connection leaves the
        schedules until `reauthorise`; its cursors are kept, so the next sync resumes where this one stopped."""
        with closing(self._connect()) as con, con:
            con.execute("UPDATE connections SET status = 'needs_reauth', status_detail = ?, updated_at = ? "
                        "WHERE connection_id = ? AND status <> 'revoked'", (detail, _now(), connection_id))

    def reauthorise(self, cipher, connection_id: str, refresh_token: str | None,
                    access_token: str | None = None) -> Connection:
        """The user reconnected: store the new tokens and make the connection syncable again (the next hourly
        schedule syncs it)."""
        connection = self.get(connection_id)
        if connection.status == "revoked":
            raise ValueError(f"connection {connection_id} is revoked: connect the account again as a new connection")
        sealed = [self._seal(cipher, connection.workspace_id, column, value)
                  for column, value in (("refresh_token", refresh_token), ("access_token", access_token))]
        with closing(self._connect()) as con, con:
            con.execute("UPDATE connections SET refresh_token_enc = ?, access_token_enc = ?, status = 'active', "
                        "status_detail = NULL, updated_at = ? WHERE connection_id = ?", (*sealed, _now(), connection_id))
        return self.get(connection_id)

    def store_access_token(self, cipher, connection: Connection, access_token: str) -> None:
        """Keep a refreshed access token (encrypted) for the next run."""
        sealed = self._seal(cipher, connection.workspace_id, "access_token", access_token)
        with closing(self._connect()) as con, con:
            con.execute("UPDATE connections SET access_token_enc = ?, updated_at = ? WHERE connection_id = ?",
                        (sealed, _now(), connection.connection_id))

    def revoke(self, connection_id: str, detail: str = "disconnected by the user") -> Connection:
        """Mark revoked and forget the tokens and cursors; the synced data goes through the erasure path."""
        with closing(self._connect()) as con, con:
            con.execute("UPDATE connections SET status = 'revoked', status_detail = ?, refresh_token_enc = NULL, "
                        "access_token_enc = NULL, sync_state = '{}', updated_at = ? WHERE connection_id = ?",
                        (detail, _now(), connection_id))
        return self.get(connection_id)

    def forget_workspace(self, workspace_id: str) -> list[str]:
        """Offboarding: delete every connection of the workspace (secure_delete zeroes the rows); their ids."""
        with closing(self._connect()) as con, con:
            ids = [r[0] for r in con.execute("SELECT connection_id FROM connections WHERE workspace_id = ?",
                                             (workspace_id,)).fetchall()]
            con.execute("DELETE FROM connections WHERE workspace_id = ?", (workspace_id,))
        return ids

    def reseal(self, cipher, workspace_id: str) -> int:
        """Re-encrypt the workspace's tokens and addresses under its current key (a workspace-key rotation:
        decryption still reads the retired key meanwhile); returns how many values were re-encrypted."""
        columns = ("account", "refresh_token", "access_token")
        with closing(self._connect()) as con, con:
            rows = con.execute("SELECT connection_id, account_enc, refresh_token_enc, access_token_enc "
                               "FROM connections WHERE workspace_id = ?", (workspace_id,)).fetchall()
            count = 0
            for row in rows:
                sealed = [self._seal(cipher, workspace_id, c, self._open(cipher, workspace_id, c, row[i + 1]))
                          for i, c in enumerate(columns)]
                count += sum(v is not None for v in sealed)
                con.execute("UPDATE connections SET account_enc = ?, refresh_token_enc = ?, access_token_enc = ? "
                            "WHERE connection_id = ?", (*sealed, row[0]))
        return count

    # -- reads -------------------------------------------------------------------------------------------

    def get(self, connection_id: str) -> Connection:
        with closing(self._connect()) as con:
            row = con.execute("SELECT * FROM connections WHERE connection_id = ?", (connection_id,)).fetchone()
        if row is None:
            raise KeyError(f"no connection {connection_id!r}")
        return _connection(row)

    def list(self, provider: str | None = None, statuses: tuple[str, ...] = SYNCABLE) -> list[Connection]:
        """Connections of `provider` (all if None) in one of `statuses`, by id."""
        marks = ",".join("?" * len(statuses))
        sql = f"SELECT * FROM connections WHERE status IN ({marks})"
        params: list[Any] = list(statuses)
        if provider:
            sql += " AND provider = ?"
            params.append(provider)
        with closing(self._connect()) as con:
            return [_connection(r) for r in con.execute(sql + " ORDER BY connection_id", params).fetchall()]

    def tokens(self, cipher, connection: Connection) -> Tokens:
        """The decrypted tokens (in memory only, for the client being built)."""
        with closing(self._connect()) as con:
            row = con.execute("SELECT refresh_token_enc, access_token_enc FROM connections WHERE connection_id = ?",
                              (connection.connection_id,)).fetchone()
        refresh, access = (self._open(cipher, connection.workspace_id, c, v)
                           for c, v in (("refresh_token", row[0]), ("access_token", row[1])))
        return Tokens(access_token=access, refresh_token=refresh)

    def account(self, cipher, connection: Connection) -> str | None:
        with closing(self._connect()) as con:
            row = con.execute("SELECT account_enc FROM connections WHERE connection_id = ?",
                              (connection.connection_id,)).fetchone()
        return self._open(cipher, connection.workspace_id, "account", row[0])

    # -- keyring ----------------------------------------------------------------------------------------

    @staticmethod
    def _seal(cipher, workspace_id: str, column: str, value: str | None) -> bytes | None:
        if value is None:
            return None
        return cipher.encrypt(workspace_id, [value], subjects=None, context=f"connections.{column}").to_pylist()[0]

    @staticmethod
    def _open(cipher, workspace_id: str, column: str, sealed: bytes | None) -> str | None:
        if sealed is None:
            return None
        return cipher.decrypt(workspace_id, [sealed], subject_refs=None, context=f"connections.{column}").to_pylist()[0]


def _connection(row: sqlite3.Row) -> Connection:
    return Connection(connection_id=row["connection_id"], workspace_id=row["workspace_id"], provider=row["provider"],
                      sandbox=bool(row["sandbox"]), status=row["status"], sync_state=json.loads(row["sync_state"]),
                      status_detail=row["status_detail"], last_synced_at=row["last_synced_at"])
