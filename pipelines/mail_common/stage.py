"""Plaintext provider records into the rows dlt loads: personal columns encrypted, deletions marked.

Shared by every mail stream. A stream declares its columns once (`mail_table` adds what every stream
carries: the connection, the workspace, the sync time and the hard-delete marker); `StreamWriter` turns a
page of records into an arrow table through `pipelines.privacy.protect` in a DuckDB work database (so the
keyring sees each distinct value once), and counts what it inserts, updates and deletes against the ids the
warehouse already holds for the connection. Deletions are rows with `_deleted = true`: dlt's merge
(delete-insert on the primary key) with the `hard_delete` hint removes the stored row.

A stream may have a child table (`ChildStream`: a message's recipients) whose rows belong to one record and
carry their own data subject. Its merge key is (connection_id, record id): dlt's delete-insert deletes every
stored row sharing the merge key of any staged row, then inserts the staged rows not marked deleted. So each
load of a record replaces all its child rows, and a deleted record's marker row (the merge key and
`_deleted = true`, nothing else) removes them.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import dlt
import duckdb
import pyarrow as pa
from dlt.common.schema.typing import TTableSchemaColumns
from dlt.extract.resource import DltResource

from pipelines.connections.report import StreamCounts
from pipelines.errors import values_withheld
from pipelines.privacy.categories import CONNECTION_HINT
from pipelines.privacy.protect import FieldCipher, plain_schema, protect_table
from pipelines.privacy.suppression import load_suppression_list
from pipelines.phones import regions_of, set_regions, warehouse_regions
from pipelines.processes import process_alive
from pipelines.sql import ident, literal, qualified
from pipelines.warehouse import table_exists

DELETED = "_deleted"
CONNECTION = "connection_id"
MERGE = {"disposition": "merge", "strategy": "delete-insert"}
PERSONAL: dict[str, Any] = {"data_type": "binary", "nullable": True}
INDEX: dict[str, Any] = {"data_type": "binary", "nullable": True}


def mail_table(key: str, columns: TTableSchemaColumns) -> TTableSchemaColumns:
    """A stream's full column declaration: (connection_id, `key`) is the primary key; the connection column
    carries the hint the privacy engine erases a disconnected account by."""
    return _keyed("primary_key", key, columns)


def child_table(key: str, columns: TTableSchemaColumns) -> TTableSchemaColumns:
    """A child table's full column declaration: merged on (connection_id, `key`) of the parent record, with
    no primary key (a deletion marker holds nothing but the merge key)."""
    return _keyed("merge_key", key, columns)


def _keyed(hint: str, key: str, columns: TTableSchemaColumns) -> TTableSchemaColumns:
    return {
        CONNECTION: {"data_type": "text", "nullable": False, hint: True, CONNECTION_HINT: True,
                     "description": "The connected account the row was synced from."},
        key: {"data_type": "text", "nullable": False, hint: True, "description": "The provider's id of the record."},
        "workspace_id": {"data_type": "text", "nullable": False, "description": "The GTG workspace of the account."},
        **columns,
        "synced_at": {"data_type": "timestamp", "nullable": False, "description": "When the sync wrote the row."},
        DELETED: {"data_type": "bool", "nullable": True, "hard_delete": True,
                  "description": "Deletion marker of a sync (the row is removed on load)."},
    }


@dataclass(frozen=True)
class ChildStream:
    """Rows that belong to one record of a stream: the record's `field` holds them (plaintext dicts, not a
    column of the stream), and the stream's columns named in `inherited` are copied onto each."""

    table: str
    columns: TTableSchemaColumns
    field: str
    inherited: tuple[str, ...] = ()


@dataclass(frozen=True)
class Stream:
    """One table a provider syncs: where it lives, its columns, its id column and its child table."""

    dataset: str
    table: str
    key: str
    columns: TTableSchemaColumns
    scope: str | None = None  # a column that partitions a full resync (e.g. the Outlook folder)
    child: ChildStream | None = None

    @property
    def primary_key(self) -> list[str]:
        return [CONNECTION, self.key]


def stream_resource(body: Callable[[], Iterator[Any]], stream: Stream) -> DltResource:
    """The dlt resource of a stream (merged on its primary key), with its child table as a table variant.

    The variant is declared before the stream's own columns and key: dlt starts a variant from the
    resource's hints as they are when the variant is created, and the child must not inherit them."""
    resource = dlt.resource(body, name=stream.table, write_disposition=MERGE)
    if stream.child:
        resource.apply_hints(table_name=stream.child.table, columns=stream.child.columns, create_table_variant=True)
    return resource.apply_hints(columns=stream.columns, primary_key=stream.primary_key)


class StreamWriter:
    """Protected arrow tables of one stream (and its child table) for one connection, with insert / update /
    delete counts. Each method returns the items to yield to dlt (none when there is nothing to load)."""

    def __init__(self, stream: Stream, work: duckdb.DuckDBPyConnection, cipher: FieldCipher, connection_id: str,
                 workspace_id: str, existing: dict[str, str | None], counts: StreamCounts) -> None:
        self.stream, self.work, self.cipher = stream, work, cipher
        self.connection_id, self.workspace_id = connection_id, workspace_id
        self.existing = existing  # id -> scope value of rows held now
        self.counts = counts
        self.synced_at = dt.datetime.now(dt.timezone.utc)
        self.regions = regions_of(work)  # read once, not for every batch protected

    def upsert(self, records: Iterable[dict[str, Any]]) -> list[Any]:
        """Rows for these records (plaintext personal values; subject columns included), and the child rows
        that replace those stored for each record."""
        rows, children = [], []
        child = self.stream.child
        for record in records:
            rid = record[self.stream.key]
            if rid in self.existing:
                self.counts.updated += 1
            else:
                self.counts.inserted += 1
            self.existing[rid] = record.get(self.stream.scope) if self.stream.scope else None
            if child is not None:
                record = dict(record)
                inherited = {self.stream.key: rid, **{c: record.get(c) for c in child.inherited}}
                children += [{**inherited, **row} for row in record.pop(child.field)]
            rows.append(record)
        return self._items(rows, children)

    def delete(self, ids: Iterable[str]) -> list[Any]:
        """Deletion rows for the ids held now (ids never loaded need no row), and one marker per id that
        deletes its child rows."""
        held = [i for i in dict.fromkeys(ids) if i in self.existing]
        for rid in held:
            del self.existing[rid]
        self.counts.deleted += len(held)
        markers = [{self.stream.key: rid, DELETED: True} for rid in held]
        return self._items(markers, markers if self.stream.child else [])

    def delete_missing(self, seen: set[str], scope: str | None = None) -> list[Any]:
        """After a full listing: delete what is held (within `scope`) but was not listed."""
        return self.delete([i for i, s in list(self.existing.items()) if i not in seen and (scope is None or s == scope)])

    def _items(self, rows: list[dict[str, Any]], children: list[dict[str, Any]]) -> list[Any]:
        items = []
        if rows:
            items.append(self._protected(self.stream.table, self.stream.columns, rows))
        if children:
            child = self.stream.child
            items.append(dlt.mark.with_table_name(self._protected(child.table, child.columns, children), child.table))
        return items

    def _protected(self, table: str, columns: TTableSchemaColumns, rows: list[dict[str, Any]]) -> pa.Table:
        base = {CONNECTION: self.connection_id, "workspace_id": self.workspace_id, "synced_at": self.synced_at}
        with values_withheld(f"protecting {table}"):
            plain = pa.Table.from_pylist([{**base, **row} for row in rows], schema=plain_schema(columns))
            out, dropped = protect_table(self.work, plain, columns, self.cipher, table=table, regions=self.regions)
            self.counts.suppressed += dropped
            return out


def _plain_type(column: dict[str, Any]) -> pa.DataType:
    """A column's arrow type; money is exact (a decimal of the declared precision and scale)."""
    if column.get("data_type") == "decimal":
        return pa.decimal128(column.get("precision", 38), column.get("scale", 9))
    return _PLAIN_TYPES[column.get("data_type", "text")]


_WORK_FILE = re.compile(r"(mail-(?:(\d+)-)?[0-9a-f]{32}\.duckdb)(\.wal|\.tmp)?")


_WAREHOUSE = "work_warehouse"  # the warehouse's alias while the work database copies from it


class WorkDatabase:
    """The DuckDB scratch database of one sync (deleted when the sync ends: it holds plaintext), named after
    the process that writes it; what a killed process left in the work folder is deleted when the next
    sync starts."""

    def __init__(self, work_dir: str | Path, warehouse_path: str | Path | None) -> None:
        Path(work_dir).mkdir(parents=True, exist_ok=True)
        remove_leftovers(Path(work_dir))
        self.path = Path(work_dir) / f"mail-{os.getpid()}-{uuid.uuid4().hex}.duckdb"
        self.warehouse_path = Path(warehouse_path) if warehouse_path else None
        self.con = duckdb.connect(str(self.path), config={"memory_limit": "300MB"})
        self._copy_from_warehouse()

    def _copy_from_warehouse(self) -> None:
        """The suppression list (erased people are not loaded again) and each workspace's default region (phones
        are stored in E.164, read in their workspace's region), through one read-only attach of the warehouse."""
        if self.warehouse_path is None or not self.warehouse_path.exists():
            load_suppression_list(self.con, None)
            set_regions(self.con, {})
            return
        self.con.execute(f"ATTACH {literal(str(self.warehouse_path))} AS {_WAREHOUSE} (READ_ONLY)")
        try:
            load_suppression_list(self.con, None, catalog=_WAREHOUSE)
            set_regions(self.con, warehouse_regions(self.con, _WAREHOUSE))
        finally:
            self.con.execute(f"DETACH {_WAREHOUSE}")

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
        _remove(self.path)


def remove_leftovers(work_dir: Path) -> list[str]:
    """Delete the work databases (with their WAL and spill folder) of mail syncs whose process is gone;
    returns their names. A sync still running in another process keeps its own."""
    removed = set()
    for path in work_dir.glob("mail-*"):  # the database, or only its WAL or spill folder if that is what is left
        match = _WORK_FILE.fullmatch(path.name)
        if match and not (match.group(2) and _owner_alive(path, int(match.group(2)))):
            _remove(work_dir / match.group(1))
            removed.add(match.group(1))
    return sorted(removed)


def _owner_alive(path: Path, pid: int) -> bool:
    """Whether the sync named in a work file's name still runs (the file vanishing meanwhile means it ended)."""
    try:
        return process_alive(pid, path.stat().st_mtime)
    except FileNotFoundError:
        return False


def _remove(database: Path) -> None:
    """A DuckDB file, its WAL and its spill folder."""
    for path in (database, database.with_name(database.name + ".wal")):
        path.unlink(missing_ok=True)
    shutil.rmtree(database.with_name(database.name + ".tmp"), ignore_errors=True)
