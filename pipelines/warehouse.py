"""dlt pipelines into the DuckDB warehouse, with the crash-recovery rules every source shares.

dlt already makes a load package durable once extracted: a run killed while loading leaves the package on
disk and the next run finishes it. Three gaps remain, closed here once for all sources:
- a kill between normalize committing a package and deleting its extracted copy leaves both; normalizing
  the copy again then fails forever ("Directory not empty"), so the stale copy is dropped first (as is a
  half-written normalized package of a kill during normalize);
- a job whose insert committed just before the kill is replayed; `finish_pending` therefore removes, within
  the recovered load ids only, any second copy of a primary key in an appended table (cheap and exact, since
  an extraction never emits a key twice; a merged table's replay deletes and inserts the same keys again);
- completed job files hold loaded rows; dlt is told to delete them, so no data lingers in the working folder.

DuckDB allows one writing process per file and lets no reader in while it writes; a second opener fails at once
(and dlt words that failure as a credentials or network problem). Every process that opens the warehouse
therefore goes through `warehouse_lock` first, which waits its turn visibly and gives up with a plain message.

The backend is chosen here, once for every source (GTG_WAREHOUSE_BACKEND): `duckdb` (the default, one file) or
`lakehouse` (Parquet through dlt's filesystem destination, models on Spark: `pipelines.lakehouse`). A source
gets its pipeline from `warehouse_pipeline` and reads what it loaded before through the warehouse path with
DuckDB; it never names a destination, so it runs on either backend unchanged.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import sys
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import datetime as dt

import dlt
import duckdb
from dlt.common.schema.utils import get_columns_names_with_prop
from dlt.destinations.impl.duckdb.configuration import DuckDbCredentials

from pipelines.lakehouse import storage as lakehouse
from pipelines.sql import ident, literal

BACKEND_ENV = "GTG_WAREHOUSE_BACKEND"
BACKENDS = ("duckdb", "lakehouse")


def backend() -> str:
    """GTG_WAREHOUSE_BACKEND: `duckdb` (default) or `lakehouse`; anything else stops with the choices."""
    chosen = os.environ.get(BACKEND_ENV) or "duckdb"
    if chosen not in BACKENDS:
        raise ValueError(f"{BACKEND_ENV}={chosen!r}: choose one of {', '.join(BACKENDS)}")
    return chosen

# DuckDB takes 80 % of RAM by default; loading then grows with the data. Capped, it spills to disk instead,
# so a load's memory stays flat however many rows it carries (GTG_LOAD_MEMORY_LIMIT to change). What a load
# holds beyond a few row groups is mostly blocks already written to the file, kept as cache: at 256 MB a 10M
# event run was no slower than at 500 MB and its load phase peaked 230 MB lower, below the extraction.
# This is every pipeline's default; a source whose loads merge into tables it grew itself (a sync in pieces
# rescans them each load) names a smaller cap of its own (`memory_limit`), since the cap is DuckDB's cache.
# Insertion order is not kept: no reader relies on it (rows carry their keys and load ids), and keeping it
# makes DuckDB's parquet inserts take more than twice as long.
LOAD_MEMORY_LIMIT = os.environ.get("GTG_LOAD_MEMORY_LIMIT", "256MB")


def load_config(memory_limit: str | None = None) -> dict[str, object]:
    """DuckDB's settings for a load's connections: `memory_limit` (default `LOAD_MEMORY_LIMIT`)."""
    return {"memory_limit": memory_limit or LOAD_MEMORY_LIMIT, "preserve_insertion_order": False}

# dlt's parquet writer keeps every row group's metadata in memory until its file closes, so one file per table
# made a long extraction grow with its row count: a 10M-event run crept up by about 50 MB over its slices. A
# file now closes every FILE_MAX_ROWS rows (dlt's `data_writer.file_max_items`), which kept that run flat. The
# files of one table load one job at a time (`load.workers`): parallel jobs share the load's memory cap above
# and ran out of it on 10M events; one job already uses every core.
FILE_MAX_ROWS = 1_000_000
os.environ.setdefault("DATA_WRITER__FILE_MAX_ITEMS", str(FILE_MAX_ROWS))
os.environ.setdefault("LOAD__WORKERS", "1")

# Loaded job files are deleted after each load (they hold the rows themselves), and so are the rows a merge
# leaves in the `<dataset>_staging` tables (copies of the last load's rows); telemetry stays off.
os.environ.setdefault("LOAD__DELETE_COMPLETED_JOBS", "true")
os.environ.setdefault("LOAD__TRUNCATE_STAGING_DATASET", "true")
os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")


# How long a process waits for the warehouse before it gives up (GTG_WAREHOUSE_WAIT_SECONDS), and how often the
# waiting is reported. Ten minutes covers a daily build of the embedded sandbox many times over.
WAIT_SECONDS_ENV = "GTG_WAREHOUSE_WAIT_SECONDS"
DEFAULT_WAIT_SECONDS = 600.0
REPORT_EVERY_SECONDS = 30.0
_POLL_SECONDS = 0.2


class WarehouseBusy(RuntimeError):
    """Another process kept the warehouse for longer than this one was allowed to wait; `holder` says who."""

    def __init__(self, message: str, holder: str) -> None:
        super().__init__(message)
        self.holder = holder


@dataclass
class _Held:
    fd: int
    exclusive: bool
    depth: int


_held: dict[str, _Held] = {}
_held_guard = threading.Lock()


def lock_path(warehouse_path: str | Path) -> Path:
    """The lock file beside the warehouse (`warehouse.duckdb.lock`): it holds who writes, never data."""
    return Path(f"{warehouse_path}.lock")


def wait_seconds() -> float:
    """GTG_WAREHOUSE_WAIT_SECONDS, default 600."""
    return float(os.environ.get(WAIT_SECONDS_ENV) or DEFAULT_WAIT_SECONDS)


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@contextmanager
def warehouse_lock(
    warehouse_path: str | Path,
    purpose: str,
    *,
    shared: bool = False,
    wait: float | None = None,
    report: Callable[[str], None] = _stderr,
) -> Iterator[None]:
    """Hold the warehouse for this process: exclusively to write, `shared` to read (readers exclude only writers).

    An advisory `flock` on `lock_path`, so the kernel releases it when the process dies, however it dies: a killed
    run never leaves the warehouse locked. Re-entrant within a process, threads included (a run that holds it
    opens connections and calls helpers that take it again), but a reader cannot turn writer: flock's upgrade
    drops the shared lock first, so a writer must take the warehouse before reading it. While another process
    holds it, `report` is told who (pid and purpose, as that process recorded them) every 30 s; after `wait`
    seconds (default `wait_seconds()`) `WarehouseBusy` is raised. Sleeping in short steps, the wait lets SIGINT
    and SIGTERM through. DuckDB's own lock error inside the hold (a program that bypasses this lock has the file
    open) becomes a `WarehouseBusy` in plain words. On the lakehouse, a writer refreshes the catalog of the lake's
    tables as it lets go, so what it loaded is readable through the warehouse file.
    """
    key = str(lock_path(warehouse_path).resolve())
    with _held_guard:
        held = _held.get(key)
        if held is not None:
            if not shared and not held.exclusive:
                raise RuntimeError(f"{purpose}: this process holds the warehouse for reading; take it for writing "
                                   "before reading it")
            held.depth += 1
    if held is not None:
        try:
            yield
        finally:
            with _held_guard:
                held.depth -= 1
        return
    Path(key).parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(key, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        _acquire(fd, key, purpose, exclusive=not shared, wait=wait, report=report)
    except BaseException:
        os.close(fd)
        raise
    held = _Held(fd, exclusive=not shared, depth=1)
    with _held_guard:
        _held[key] = held
    try:
        yield
    except Exception as exc:
        foreign = _foreign_lock(exc, key.removesuffix(".lock"))
        if foreign is None:
            raise
        raise foreign from exc
    finally:
        with _held_guard:
            held.depth -= 1
            done = held.depth == 0
            if done:
                del _held[key]
        if done:
            if held.exclusive:
                try:
                    if backend() == "lakehouse":  # tables a writer added become views before anyone reads
                        lakehouse.refresh_catalog(key.removesuffix(".lock"))
                finally:
                    os.ftruncate(fd, 0)
            os.close(fd)  # closing the descriptor releases the flock


def holds_for_writing(warehouse_path: str | Path) -> bool:
    """Whether this process holds the warehouse lock exclusively (a run does, from start to end)."""
    with _held_guard:
        held = _held.get(str(lock_path(warehouse_path).resolve()))
        return held is not None and held.exclusive


def _acquire(fd: int, path: str, purpose: str, *, exclusive: bool, wait: float | None,
             report: Callable[[str], None]) -> None:
    limit = wait_seconds() if wait is None else wait
    started = time.monotonic()
    next_report = started
    while True:
        try:
            fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            waited = time.monotonic() - started
            warehouse = path.removesuffix(".lock")
            if waited >= limit:
                holder = _holder(path)
                raise WarehouseBusy(
                    f"the warehouse {warehouse} is in use by {holder}; {purpose} gave up after waiting "
                    f"{waited:.0f} s (set {WAIT_SECONDS_ENV} to wait longer)", holder) from None
            if time.monotonic() >= next_report:
                report(f"{purpose}: waiting for the warehouse {warehouse}, in use by {_holder(path)}; "
                       f"giving up in {limit - waited:.0f} s ({WAIT_SECONDS_ENV})")
                next_report += REPORT_EVERY_SECONDS
            time.sleep(min(_POLL_SECONDS, max(limit - waited, 0.0)))
    os.ftruncate(fd, 0)  # whatever is recorded there is stale now (a killed writer leaves its record)
    if exclusive:
        os.pwrite(fd, json.dumps({"pid": os.getpid(), "purpose": purpose,
                                  "since": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}).encode(), 0)


def _foreign_lock(exc: BaseException, warehouse: str) -> WarehouseBusy | None:
    """DuckDB's own lock error, anywhere in the chain of `exc`, in plain words (dlt words it as a credentials or
    network problem): a program that does not take the platform's lock, a DuckDB shell say, has the file open."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, duckdb.IOException) and "Could not set lock on file" in str(seen):
            pid = re.search(r"\(PID (\d+)\)", str(seen))
            holder = f"another program{f' (pid {pid[1]})' if pid else ''}"
            return WarehouseBusy(
                f"the warehouse {warehouse} is open in {holder} that does not take the platform's lock (a DuckDB "
                "shell or notebook, say); DuckDB lets no one else in while it is open: close it and run again",
                holder)
        seen = seen.__cause__ or seen.__context__
    return None


def _holder(path: str) -> str:
    """Who holds the lock, as the writer recorded it; readers record nothing (there may be several)."""
    try:
        record = json.loads(Path(path).read_text() or "null")
    except (OSError, ValueError):
        record = None
    if not record:
        return "another process reading it"
    return f"pid {record['pid']} ({record['purpose']}, since {record['since']})"


def warehouse_pipeline(name: str, dataset: str, warehouse_path: str | Path, pipelines_dir: str | Path,
                       day: dt.date | None = None, memory_limit: str | None = None) -> dlt.Pipeline:
    """A dlt pipeline that loads `dataset` into the warehouse of the configured backend, keeping its state under
    `pipelines_dir`: the DuckDB file, or the lake beside it (files under the partition `day`, default the load's
    day) with the file refreshed as the catalog of the lake's tables, so the source reads what it loaded before.
    `memory_limit` caps DuckDB while this pipeline loads (default `LOAD_MEMORY_LIMIT`; the lake has no cap).
    The cap is set on the database when a load opens the file (dlt closes it after the load), so each pipeline's
    loads run under its own cap."""
    Path(warehouse_path).parent.mkdir(parents=True, exist_ok=True)
    if backend() == "lakehouse":
        lakehouse.refresh_catalog(warehouse_path)
        target = lakehouse.destination(warehouse_path, day)
    else:
        target = dlt.destinations.duckdb(DuckDbCredentials(str(warehouse_path), global_config=load_config(memory_limit)))
    return dlt.pipeline(pipeline_name=name, destination=target, dataset_name=dataset, pipelines_dir=str(pipelines_dir))


def table_exists(con, dataset: str, table: str, catalog: str | None = None) -> bool:
    """Whether `dataset.table` exists (in the attached database `catalog`, if given); `con` is DB-API."""
    sql = "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?"
    params = [dataset, table]
    if catalog:
        sql += " AND table_catalog = ?"
        params.append(catalog)
    return bool(con.execute(sql, params).fetchall()[0][0])  # fetched whole: a pending result blocks the next query


def finish_pending(pipeline: dlt.Pipeline) -> list[str]:
    """Finish load packages an earlier, interrupted run left behind; return their load ids.

    Must run before a new extraction: `pipeline.run` would otherwise load the pending packages and stop
    without extracting. Rows of a replayed job are deduplicated by primary key within those load ids (in a
    database; on the filesystem a replayed job overwrites its own file).
    """
    if not pipeline.has_pending_data:
        return []
    _drop_stale_copies(pipeline)
    pipeline.normalize()
    load_ids = list(pipeline.list_normalized_load_packages())
    pipeline.load()
    if pipeline.destination.destination_type != "dlt.destinations.filesystem":
        _dedupe_loads(pipeline, load_ids)
    return load_ids


def _drop_stale_copies(pipeline: dlt.Pipeline) -> None:
    """Extracted packages already normalized, and half-normalized ones, as an interrupted normalize leaves them.

    dlt has no public call for this, hence its storages are used directly.
    """
    normalized = set(pipeline.list_normalized_load_packages())
    extracted = pipeline._get_normalize_storage().extracted_packages
    half_normalized = pipeline._get_load_storage().new_packages
    half_ids = set(half_normalized.list_packages()) if half_normalized.storage.has_folder(".") else set()
    for load_id in pipeline.list_extracted_load_packages():
        if load_id in normalized:
            extracted.delete_package(load_id)
        elif load_id in half_ids:
            half_normalized.delete_package(load_id)


def _dedupe_loads(pipeline: dlt.Pipeline, load_ids: list[str]) -> None:
    if not load_ids:
        return
    schema = pipeline.default_schema
    with pipeline.sql_client() as client:
        for table in schema.data_tables():
            keys = get_columns_names_with_prop(table, "primary_key")
            # A merge (delete-insert on the key) replayed is harmless, and its rows may carry no load id (arrow
            # tables get none): only appended tables can hold a second copy.
            if not keys or table.get("write_disposition") == "merge" or "_dlt_load_id" not in table["columns"]:
                continue
            name = client.make_qualified_table_name(table["name"])
            partition = ", ".join(client.escape_column_name(k) for k in keys)
            ids = ", ".join(f"'{i}'" for i in load_ids)
            client.execute_sql(
                f"DELETE FROM {name} WHERE rowid IN (SELECT rowid FROM (SELECT rowid, row_number() OVER "
                f"(PARTITION BY {partition} ORDER BY rowid) AS copy FROM {name} WHERE _dlt_load_id IN ({ids})) "
                f"WHERE copy > 1)"
            )


def publish_snapshot(con: duckdb.DuckDBPyConnection, snapshot_path: Path, schema: str = "analytics") -> dict[str, int]:
    """Copy every table and view of `schema` (views materialised), with their comments, from the warehouse
    behind `con` into a new DuckDB file and swap it in for `snapshot_path` with one atomic rename; returns
    rows per table. `con` is the caller's own connection (a process holding the warehouse for writing cannot
    open it a second time), with external access allowed (the new file is attached).

    Analysts open the snapshot read-only: DuckDB lets no reader into a file another process writes, and an
    open connection keeps reading the file it opened while a newer snapshot replaces it."""
    snapshot_path.parent.mkdir(parents=True, exist_ok=True)
    for stale in snapshot_path.parent.glob(f".{snapshot_path.name}.*.tmp*"):  # a killed publish's file and WAL
        stale.unlink()
    temporary = snapshot_path.with_name(f".{snapshot_path.name}.{uuid.uuid4().hex}.tmp")
    alias = f"snapshot_{uuid.uuid4().hex}"
    published: dict[str, int] = {}
    warehouse = con.execute("SELECT current_database()").fetchone()[0]
    relations = con.execute(
        "SELECT table_name, comment FROM duckdb_tables() WHERE database_name = ? AND schema_name = ? "
        "UNION ALL SELECT view_name, comment FROM duckdb_views() WHERE database_name = ? AND schema_name = ? "
        "ORDER BY 1", [warehouse, schema, warehouse, schema]).fetchall()
    con.execute(f"ATTACH {literal(str(temporary))} AS {ident(alias)}")
    try:
        con.execute(f"CREATE SCHEMA {ident(alias)}.{ident(schema)}")
        for name, comment in relations:
            target = f"{ident(alias)}.{ident(schema)}.{ident(name)}"
            con.execute(f"CREATE TABLE {target} AS SELECT * FROM {ident(warehouse)}.{ident(schema)}.{ident(name)}")
            if comment:
                con.execute(f"COMMENT ON TABLE {target} IS {literal(comment)}")
            for column, text in con.execute(
                "SELECT column_name, comment FROM duckdb_columns() WHERE database_name = ? AND schema_name = ? "
                "AND table_name = ? AND comment IS NOT NULL", [warehouse, schema, name]).fetchall():
                con.execute(f"COMMENT ON COLUMN {target}.{ident(column)} IS {literal(text)}")
            published[name] = con.execute(f"SELECT count(*) FROM {target}").fetchone()[0]
        con.execute(f"CHECKPOINT {ident(alias)}")
    finally:
        con.execute(f"DETACH {ident(alias)}")
    os.replace(temporary, snapshot_path)
    return published
