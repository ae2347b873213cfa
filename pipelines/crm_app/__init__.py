"""The CRM app database: workspaces, users, billing profiles, contacts, companies and deals into `raw_crm_app`.

dlt's `sql_database` source reads each table (`sql_table`, arrow batches), incrementally on `updated_at` with
a merge on the table's key; a row the app soft-deleted (`deleted_at` set) is removed by the merge (dlt's
`hard_delete` hint), and so is a row the app deleted outright, found by comparing keys after each read
(`pipelines.crm_app.removed`, which refuses to remove more than a share of a table's rows at once). Personal
columns are encrypted before dlt sees them (`pipelines.crm_app.rows`). Any SQLAlchemy URL works
(GTG_CRM_APP_DATABASE_URL, e.g. `postgresql+psycopg://…`); the sandbox generates a SQLite file
(`pipelines.crm_app.sandbox`). After each load, the workspaces join the workspace registry and every
closed account (a user soft-deleted) is filed as an erasure request for that person across every table.

`python -m pipelines.crm_app` runs it with plain dlt, no Dagster.
"""

from __future__ import annotations

import datetime as dt
import functools
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import dlt
import sqlalchemy as sa
from dlt.extract import DltSource
from dlt.extract.resource import DltResource
from dlt.sources.sql_database import TableLoader, sql_table
from dlt.sources.sql_database.schema_types import table_to_columns

from pipelines.crm_app.removed import Refusal, RemovalGuard, RemovalsRefused, tombstones
from pipelines.crm_app.rows import Protector, TableCounts
from pipelines.crm_app.settings import APP_TABLES, CHUNK_ROWS, CURSOR, DATASET_NAME, SOURCE_NAME, AppTable
from pipelines.mail_common.stage import WorkDatabase
from pipelines.phones import set_regions
from pipelines.privacy.requests import Inbox, Request
from pipelines.warehouse import finish_pending, table_exists, warehouse_lock, warehouse_pipeline
from pipelines.workspaces import WorkspaceRegistry

__all__ = ["DATASET_NAME", "SOURCE_NAME", "AppSync", "RemovalGuard", "RemovalsRefused", "crm_app_source",
           "open_sync", "recover", "sync"]

MERGE = {"disposition": "merge", "strategy": "delete-insert"}
STAGED_UNIQUE_HINT = "x-stage-data-deduplicated"  # dlt's table hint: the staged rows need no deduplication
REQUESTED_BY = "crm_app:account_closed"


@dataclass
class AppSync:
    """One sync of the app database: its engine, the protector of its rows, the guard of its removals and what
    it saw (`refused`: the tables whose removals the guard refused)."""

    engine: sa.Engine
    protector: Protector
    warehouse_path: Path | None = None
    guard: RemovalGuard = field(default_factory=RemovalGuard)
    started: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.timezone.utc))
    refused: list[Refusal] = field(default_factory=list)

    @property
    def counts(self) -> dict[str, TableCounts]:
        """Counts of every app table (zeros for one where nothing changed)."""
        return {t.name: self.protector.counts.get(t.name, TableCounts()) for t in APP_TABLES}

    def finish(self, inbox: Inbox, registry: WorkspaceRegistry) -> int:
        """After the load: register the workspaces and file an erasure for each closed account (once: a
        repeated sync finds the request by its code). Returns the requests filed."""
        with self.engine.connect() as con:
            live = [r[0] for r in con.execute(sa.text("SELECT workspace_id FROM workspaces WHERE deleted_at IS NULL"))]
        registry.register(live, "crm")
        filed = 0
        for account in self.protector.closed_accounts:
            kind, value = ("email", account.email) if account.email else ("phone", account.phone)
            if not value:
                continue
            code = f"crm_app-closed-{account.workspace_id}-{account.user_id}"
            inbox.submit_once(Request("erasure", account.workspace_id, kind, value, source="crm_app",
                                      requested_by=REQUESTED_BY, confirmation_code=code))
            filed += 1
        self.protector.closed_accounts.clear()
        return filed

    def raise_refused(self) -> None:
        """Raise `RemovalsRefused` if the guard refused some table's removals (after the load and `finish`:
        what the sync could do safely is done)."""
        if self.refused:
            raise RemovalsRefused(self.refused)


@contextmanager
def open_sync(database_url: str, cipher, *, warehouse_path: str | Path, work_dir: str | Path,
              guard: RemovalGuard | None = None) -> Iterator[AppSync]:
    """An engine on the app database and a work database for protecting its rows (deleted when done).

    Phones are stored in E.164 read in their workspace's default region (`pipelines.phones`); the app's own
    rows take the regions from the app itself, since its workspaces may not be in the warehouse yet."""
    engine = sa.create_engine(database_url)
    work = WorkDatabase(work_dir, warehouse_path)
    try:
        with engine.connect() as con:
            set_regions(work.con, dict(con.execute(sa.text("SELECT workspace_id, default_region FROM workspaces"))
                                       .fetchall()))
        yield AppSync(engine, Protector(work.con, cipher), Path(warehouse_path), guard or RemovalGuard())
    finally:
        work.close()
        engine.dispose()


@dlt.source(name=SOURCE_NAME, max_table_nesting=0)
def crm_app_source(app: AppSync | None):
    """One resource per app table (`None` only declares them, for Dagster, without touching any database)."""
    return [_table_resource(table, app) for table in APP_TABLES]


def _table_resource(table: AppTable, app: AppSync | None) -> DltResource:
    """The table's resource: `sql_table` reads what changed since the cursor (dlt's incremental drops the rows
    at the cursor that were loaded already), and a transformer of the table's name protects what it keeps.
    A map step would run before dlt's incremental step, protecting and counting those rows again."""
    stored = dlt.transformer(name=table.name, write_disposition=MERGE, primary_key=table.key,
                             columns=table.declared)
    if app is None:
        return _unique_staged(stored(_protected)(None, table))
    rows = sql_table(
        credentials=app.engine, table=table.name, backend="pyarrow", chunk_size=CHUNK_ROWS,
        reflection_level="full", type_adapter_callback=float_as_double,
        # tombstones (`pipelines.crm_app.removed`) carry no cursor value: they pass, and leave the cursor as is
        incremental=dlt.sources.incremental(CURSOR, on_cursor_value_missing="include"),
        query_adapter_callback=_with_joined(table) if table.joined else None, primary_key=table.key,
        table_loader_class=functools.partial(MirrorTableLoader, app=app, spec=table),
    ).with_name(f"{table.name}_read")
    return _unique_staged(rows | stored(_protected)(app, table))


def _unique_staged(resource: DltResource) -> DltResource:
    """Tells dlt's merge that a load stages each key once, so it inserts the staged rows as they are instead
    of numbering every row by key first (a window over the whole rows, about four times the cost of the rest
    of the merge). A sync reads each key once (the app's primary key), and a tombstone's key is one the app
    no longer has, so it meets a read row only when the row was deleted while being read: the merge's insert
    skips the tombstone (`deleted_at` set) and the next sync removes the row. Only a load job replayed after
    a crash can stage its rows twice, and `recover` removes those copies."""
    return resource.apply_hints(additional_table_hints={STAGED_UNIQUE_HINT: True})


def _protected(batch, app: AppSync | None, table: AppTable):
    yield app.protector(table, batch)


class MirrorTableLoader(TableLoader):
    """Reads rows in the app's own column types, then the tombstones of the rows the app deleted outright
    (none when the guard refuses them: the refusal is noted on the sync and counted).

    The resource's hints describe the stored rows (personal columns as ciphertext, made by the protecting step
    after reading), so the loader is given the reflected columns instead: with the hints, it would try to
    convert the plaintext it reads to them."""

    def __init__(self, engine: sa.Engine, backend, table: sa.Table, columns, *, app: AppSync, spec: AppTable,
                 **kwargs) -> None:
        super().__init__(engine, backend, table, table_to_columns(table, "full", float_as_double), **kwargs)
        self.app, self.spec = app, spec

    def load_rows(self, backend_kwargs=None) -> Iterator:
        yield from super().load_rows(backend_kwargs)
        with self.engine.connect() as connection:
            removed = tombstones(connection, self.table, self.spec, self.app.warehouse_path,
                                 self.app.protector.cipher, self.app.started, self.app.guard)
        if isinstance(removed, Refusal):
            self.app.refused.append(removed)
            self.app.protector.counts.setdefault(self.spec.name, TableCounts()).removals_refused += removed.missing
        elif removed is not None:
            yield removed


def float_as_double(sql_type):
    """SQLAlchemy's `Float` (SQLite's FLOAT, PostgreSQL's DOUBLE PRECISION) as the double it is: since
    SQLAlchemy 2.1 it no longer derives from `Numeric`, which dlt's reflection maps to a double, so dlt would
    leave its type unknown (and say so in a warning)."""
    if isinstance(sql_type, sa.Float):
        return sa.Numeric(asdecimal=False)
    return sql_type


def _with_joined(table: AppTable):
    """A query adapter adding the columns `table.joined` names (from a LEFT JOIN on the parent's key)."""

    def adapt(query: sa.Select, source: sa.Table, incremental=None, engine: sa.Engine | None = None) -> sa.Select:
        for column, (parent, key, there) in (table.joined or {}).items():
            other = sa.Table(parent, source.metadata, autoload_with=engine)
            query = query.add_columns(other.c[there].label(column)).select_from(
                source.outerjoin(other, source.c[key] == other.c[key]))
        return query

    return adapt


def recover(pipeline: dlt.Pipeline) -> list[str]:
    """Finish the loads an interrupted sync left behind (`finish_pending`), then keep one row of each key the
    replay loaded twice: a load job replayed after a crash stages its rows again, and the merge takes staged
    rows as unique (`_unique_staged`). Returns the load ids finished."""
    finished = finish_pending(pipeline)
    if not finished or pipeline.destination.destination_type == "dlt.destinations.filesystem":
        return finished  # on the filesystem a replayed job overwrites its own file
    with pipeline.sql_client() as client:
        for table in APP_TABLES:
            if not table_exists(client.native_connection, DATASET_NAME, table.name):
                continue
            name = client.make_qualified_table_name(table.name)
            client.execute_sql(
                f"DELETE FROM {name} WHERE rowid IN (SELECT rowid FROM (SELECT rowid, row_number() OVER "
                f"(PARTITION BY {client.escape_column_name(table.key)} ORDER BY rowid) AS copy FROM {name}) "
                "WHERE copy > 1)")
    return finished


def sync(database_url: str, cipher, *, warehouse_path: str | Path, dlt_dir: str | Path, work_dir: str | Path,
         inbox: Inbox, registry: WorkspaceRegistry, guard: RemovalGuard | None = None) -> dict[str, TableCounts]:
    """Sync the app database with plain dlt (what the Dagster asset does through dagster-dlt). Raises
    `RemovalsRefused` after the load when the guard refused some table's removals."""
    with warehouse_lock(warehouse_path, f"{SOURCE_NAME} sync"):
        pipeline = warehouse_pipeline(SOURCE_NAME, DATASET_NAME, warehouse_path, dlt_dir)
        recover(pipeline)
        with open_sync(database_url, cipher, warehouse_path=warehouse_path, work_dir=work_dir, guard=guard) as app:
            pipeline.run(crm_app_source(app)).raise_on_failed_jobs()
            app.finish(inbox, registry)
    app.raise_refused()
    return app.counts
