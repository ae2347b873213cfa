"""Plaintext provider records into the rows dlt loads: personal columns encrypted, deletions marked.

Shared by every mail stream. A stream declares its columns once (`mail_table` adds what every stream
carries: the connection, the workspace, the sync time and the hard-delete marker); `StreamWriter` turns a
page of records into an arrow table through `pipelines.privacy.protect` in a DuckDB work database (so the
keyring sees each distinct value once), and counts what it inserts, updates and deletes against the ids the
warehouse already holds for the connection. Deletions are rows with `_deleted = true`: dlt's merge
(delete-insert on the primary key) with the `hard_delete` hint removes the stored row.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import duckdb
import pyarrow as pa
from dlt.common.schema.typing import TTableSchemaColumns

from pipelines.mail_common.report import StreamCounts
from pipelines.privacy.categories import CONNECTION_HINT, declaration
from pipelines.privacy.protect import FieldCipher, protect
from pipelines.sql import ident, qualified
from pipelines.warehouse import table_exists

DELETED = "_deleted"
CONNECTION = "connection_id"
MERGE = {"disposition": "merge", "strategy": "delete-insert"}
PERSONAL: dict[str, Any] = {"data_type": "binary", "nullable": True}
INDEX: dict[str, Any] = {"data_type": "binary", "nullable": True}
_PLAIN_TYPES = {"text": pa.string(), "bigint": pa.int64(), "bool": pa.bool_(), "double": pa.float64(),
                "timestamp": pa.timestamp("us", tz="UTC"), "binary": pa.string(), "json": pa.string()}


def mail_table(key: str, columns: TTableSchemaColumns) -> TTableSchemaColumns:
    """A stream's full column declaration: (connection_id, `key`) is the primary key; the connection column
    carries the hint the privacy engine erases a disconnected account by."""
    return {
        CONNECTION: {"data_type": "text", "nullable": False, "primary_key": True, CONNECTION_HINT: True},
        key: {"data_type": "text", "nullable": False, "primary_key": True},
        "workspace_id": {"data_type": "text", "nullable": False},
        **columns,
        "synced_at": {"data_type": "timestamp", "nullable": False},
        DELETED: {"data_type": "bool", "nullable": True, "hard_delete": True},
    }


@dataclass(frozen=True)
class Stream:
    """One table a provider syncs: where it lives, its columns and its id column."""

    dataset: str
    table: str
    key: str
    columns: TTableSchemaColumns
    scope: str | None = None  # a column that partitions a full resync (e.g. the Outlook folder)

    @property
    def primary_key(self) -> list[str]:
        return [CONNECTION, self.key]


class StreamWriter:
    """Protected arrow tables of one stream for one connection, with insert / update / delete counts."""

    def __init__(self, stream: Stream, work: duckdb.DuckDBPyConnection, cipher: FieldCipher, connection_id: str,
                 workspace_id: str, existing: dict[str, str | None], counts: StreamCounts) -> None:
        self.stream, self.work, self.cipher = stream, work, cipher
        self.connection_id, self.workspace_id = connection_id, workspace_id
        self.existing = existing  # id -> scope value of rows held now
        self.counts = counts
        self.synced_at = dt.datetime.now(dt.timezone.utc)
        decl = declaration(stream.columns)
        plain = {name: _PLAIN_TYPES[col.get("data_type", "text")] for name, col in stream.columns.items()}
        plain.update({name: pa.string() for name in decl.subject_of})
        self._schema = pa.schema(plain)

    def upsert(self, records: Iterable[dict[str, Any]]) -> pa.Table | None:
        """Rows for these records (plaintext personal values; subject columns included)."""
        rows = []
        for record in records:
            rid = record[self.stream.key]
            if rid in self.existing:
                self.counts.updated += 1
            else:
                self.counts.inserted += 1
            self.existing[rid] = record.get(self.stream.scope) if self.stream.scope else None
            rows.append(record)
        return self._protected(rows)

    def delete(self, ids: Iterable[str]) -> pa.Table | None:
        """Deletion rows for the ids held now (ids never loaded need no row)."""
        held = [i for i in dict.fromkeys(ids) if i in self.existing]
        for rid in held:
            del self.existing[rid]
        self.counts.deleted += len(held)
        return self._protected([{self.stream.key: rid, DELETED: True} for rid in held])

    def delete_missing(self, seen: set[str], scope: str | None = None) -> pa.Table | None:
        """After a full listing: delete what is held (within `scope`) but was not listed."""
        return self.delete([i for i, s in list(self.existing.items()) if i not in seen and (scope is None or s == scope)])

    def _protected(self, rows: list[dict[str, Any]]) -> pa.Table | None:
        if not rows:
            return None
        base = {CONNECTION: self.connection_id, "workspace_id": self.workspace_id, "synced_at": self.synced_at}
        plain = pa.Table.from_pylist([{**base, **row} for row in rows], schema=self._schema)
        self.work.register("plain_rows", plain)
        try:
            sql = protect(self.work, "plain_rows", self.stream.columns, self.cipher, table=self.stream.table)
            out = self.work.sql(sql).to_arrow_table()
        finally:
            self.work.unregister("plain_rows")
        fields = [f.with_nullable(self.stream.columns[f.name].get("nullable", True)) for f in out.schema]
        return out.cast(pa.schema(fields))


class WorkDatabase:
    """The DuckDB scratch database of one sync (deleted when the sync ends: it holds plaintext)."""

    def __init__(self, work_dir: str | Path, warehouse_path: str | Path | None) -> None:
        Path(work_dir).mkdir(parents=True, exist_ok=True)
        self.path = Path(work_dir) / f"mail-{uuid.uuid4().hex}.duckdb"
        self.warehouse_path = Path(warehouse_path) if warehouse_path else None
        self.con = duckdb.connect(str(self.path), config={"memory_limit": "300MB"})

    def existing(self, stream: Stream, connection_id: str) -> dict[str, str | None]:
        """Ids (and scope values) the warehouse holds for the connection, read-only."""
        if self.warehouse_path is None or not self.warehouse_path.exists():
            return {}
        with duckdb.connect(str(self.warehouse_path), read_only=True) as wh:
            if not table_exists(wh, stream.dataset, stream.table):
                return {}
            scope = ident(stream.scope) if stream.scope else "NULL"
            rows = wh.execute(f"SELECT {ident(stream.key)}, {scope} FROM {qualified(f'{stream.dataset}.{stream.table}')} "
                              f"WHERE {CONNECTION} = ?", [connection_id]).fetchall()
        return dict(rows)

    def close(self) -> None:
        self.con.close()
        for path in (self.path, self.path.with_name(self.path.name + ".wal")):
            path.unlink(missing_ok=True)
