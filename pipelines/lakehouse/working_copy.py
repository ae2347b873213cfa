"""The privacy engine's writes on the lakehouse: its unchanged SQL runs on a working copy, and only the Parquet
files whose rows it changed are rewritten.

Retention and the data-subject requests delete and update rows with DuckDB SQL (`DELETE ... WHERE`, `UPDATE ...
FROM` by `rowid`, transactions), which a view over Parquet cannot take. `working_copy` therefore opens an
in-memory DuckDB database holding the warehouse as the catalog shows it (a view per lake table, the catalog's own
views such as the view models), where each table the pass may change is a real table copied from its files.
Each copied row remembers its file and a hash of its values; when the pass is done, every file with a row
deleted or changed is written again from the copy, in the file's own columns and types (a model's partition
column stays in its folder name), and swapped in with one atomic rename (`replace_file`); a file left without
rows is deleted (a table's last file stays, empty). A file whose rows are all unchanged keeps its bytes. The copy lives in memory only, so no
second copy of anyone's rows is left on disk; it holds the whole of each table it copies, which bounds a pass
by memory (a cluster would run the same statements as Delta or Iceberg MERGE / DELETE instead).

The caller holds the warehouse lock for writing, as every writer does. A pass that fails leaves every file as it
was; a process killed while files are being replaced leaves each file either old or new, and the pass, run
again, finishes (deletion and anonymisation are idempotent).
"""

from __future__ import annotations

import os
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator

import duckdb

from pipelines.lakehouse import storage
from pipelines.sql import ident, literal, qualified

ORIGIN_SCHEMA = "lake_origin"
_CHANGING = f"{ORIGIN_SCHEMA}.changing_tables"  # the tables a working copy writes back, and their folders


def replace_file(con: duckdb.DuckDBPyConnection, path: Path, select_sql: str, table_dir: Path,
                 params: list | None = None) -> bool:
    """Write the rows of `select_sql` over `path`, a file of the table in `table_dir` (a hidden file beside it, no
    reader's glob matches, then one atomic rename); with no row left, delete it, unless it is the table's last
    file, which stays empty (readers need the table's columns). Returns whether the file is kept. Spark's
    checksum file of the old bytes goes too (Spark would refuse the new ones)."""
    path.with_name(f".{path.name}.crc").unlink(missing_ok=True)
    kept = con.execute(f"SELECT count(*) FROM ({select_sql})", params or []).fetchone()[0]
    if kept == 0 and any(f != path for f in storage.files(table_dir)):
        path.unlink()
        return False
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        con.execute(f"COPY ({select_sql}) TO {literal(str(temporary))} (FORMAT parquet, COMPRESSION zstd)",
                    params or [])
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return True


def _origin(table: str) -> str:
    return f"{ORIGIN_SCHEMA}.{ident(table.replace('.', '__'))}"


@contextmanager
def working_copy(warehouse_path: str | Path, tables: Iterable[str]) -> Iterator[duckdb.DuckDBPyConnection]:
    """A DuckDB connection on the warehouse where `tables` (those in the lake) can be changed; on a clean exit the
    changes are written back to the lake file by file (see the module's docstring), as `write_back` does earlier
    for a caller that must know them stored before it records them done."""
    lake = storage.lake_root(warehouse_path)
    loaded = storage.table_dirs(lake)
    changing = [t for t in dict.fromkeys(tables) if t in loaded]
    con = duckdb.connect()
    try:
        con.execute(f"SET TimeZone = 'UTC'; CREATE SCHEMA {ORIGIN_SCHEMA}")
        con.execute(f"CREATE TABLE {_CHANGING} (table_name VARCHAR, folder VARCHAR)")
        for table, folder in loaded.items():
            if table in changing:
                _copy(con, table, folder)
                con.execute(f"INSERT INTO {_CHANGING} VALUES (?, ?)", [table, str(folder)])
            else:
                storage.register(con, table, folder)
        _catalog_views(con, Path(warehouse_path), set(loaded))
        yield con
        write_back(con)
    finally:
        con.close()


def write_back(con: duckdb.DuckDBPyConnection) -> int:
    """Write the changes made so far on a working copy to the lake's files now, and count the files rewritten
    (0 on any other connection, whose changes are stored as they are made). The privacy engine calls it before
    it closes requests, so a request is never recorded done while its rows are only in memory."""
    held = con.execute("SELECT count(*) FROM duckdb_tables() WHERE schema_name = ? AND table_name = ?",
                       [ORIGIN_SCHEMA, _CHANGING.split(".")[1]]).fetchall()  # all: no result left pending
    if held == [(0,)]:
        return 0
    return sum(_write_back(con, table, Path(folder))
               for table, folder in con.execute(f"SELECT table_name, folder FROM {_CHANGING}").fetchall())


def _copy(con: duckdb.DuckDBPyConnection, table: str, folder: Path) -> None:
    """`table` as a real table and, beside it, each row's file and the hash of its values, by `rowid` (which
    DuckDB keeps through the pass's deletes, updates and the dropping of the file column here)."""
    dataset = table.split(".", 1)[0]
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {ident(dataset)}")
    con.execute(f"CREATE TABLE {qualified(table)} AS SELECT * FROM {storage.scan_sql(folder, with_filename=True)}")
    con.execute(f"CREATE TEMP TABLE lake_files AS SELECT rowid AS rid, filename FROM {qualified(table)}")
    con.execute(f"ALTER TABLE {qualified(table)} DROP COLUMN filename")
    con.execute(f"CREATE TABLE {_origin(table)} AS SELECT f.rid, f.filename, hash(t) AS digest "
                f"FROM lake_files f JOIN {qualified(table)} t ON t.rowid = f.rid")
    con.execute("DROP TABLE lake_files")


def _catalog_views(con: duckdb.DuckDBPyConnection, catalog: Path, lake_tables: set[str]) -> None:
    """The catalog's own views (the view models), which read the lake tables and each other."""
    if not catalog.exists():
        return
    with duckdb.connect(str(catalog), read_only=True) as source:
        views = source.execute("SELECT schema_name, view_name, sql FROM duckdb_views() WHERE NOT internal "
                               "ORDER BY schema_name, view_name").fetchall()
    pending = [(schema, sql) for schema, name, sql in views if f"{schema}.{name}" not in lake_tables]
    while pending:  # a view is created after the views it reads
        failed = []
        for schema, sql in pending:
            try:
                con.execute(f"CREATE SCHEMA IF NOT EXISTS {ident(schema)}; {sql}")
            except duckdb.Error:  # one it reads comes later; no progress at all stops below
                failed.append((schema, sql))
        if len(failed) == len(pending):
            raise RuntimeError(f"the warehouse catalog's views {[s for s, _ in failed]} read tables that are gone")
        pending = failed


def _write_back(con: duckdb.DuckDBPyConnection, table: str, folder: Path) -> int:
    """Rewrite the files of `table` holding a row deleted or changed since the last write-back, then take the
    copy as the files' new state; the files rewritten."""
    origin = _origin(table)
    added = con.execute(f"SELECT count(*) FROM {qualified(table)} t ANTI JOIN {origin} o ON t.rowid = o.rid").fetchone()[0]
    if added:
        raise RuntimeError(f"{table}: {added} row(s) inserted; the lakehouse takes new rows from loads only")
    changed = [Path(f) for (f,) in con.execute(
        f"SELECT DISTINCT o.filename FROM {origin} o LEFT JOIN {qualified(table)} t ON t.rowid = o.rid "
        "WHERE t.rowid IS NULL OR hash(t) <> o.digest ORDER BY 1").fetchall()]
    for path in changed:
        own = con.execute(f"DESCRIBE SELECT * FROM read_parquet({literal(str(path))}, hive_partitioning = false)"
                          ).fetchall()
        columns = ", ".join(f"CAST(t.{ident(name)} AS {kind}) AS {ident(name)}" for name, kind, *_ in own)
        replace_file(con, path, f"SELECT {columns} FROM {qualified(table)} t JOIN {origin} o ON t.rowid = o.rid "
                     "WHERE o.filename = ? ORDER BY o.rid", folder, [str(path)])
    if changed:
        con.execute(f"DELETE FROM {origin} WHERE rid NOT IN (SELECT rowid FROM {qualified(table)})")
        con.execute(f"UPDATE {origin} SET digest = hash(t) FROM {qualified(table)} t "
                    f"WHERE t.rowid = {origin}.rid AND hash(t) <> {origin}.digest")
    return len(changed)
