"""One Meta connection's sync as a run of loads: the whole source first, then, while its insights stopped after
a piece, the next piece of insights, each its own dlt load whose cursors are saved once it is loaded. The
Dagster asset and `sync` (plain dlt) drive the same `SyncPieces`, so memory stays bounded by a piece (under the
source's own DuckDB cap, `LOAD_MEMORY_LIMIT`) and a crash between pieces resumes where the last loaded one ended."""

from __future__ import annotations

import datetime as dt
from contextlib import closing
from pathlib import Path
from typing import Callable, Iterator

from dlt.extract.source import DltSource

from pipelines.connections.outcome import recorded_outcome
from pipelines.connections.registry import Connection, ConnectionRegistry
from pipelines.connections.report import SyncReport
from pipelines.facebook import facebook_source
from pipelines.facebook.allocator import fix_mmap_threshold
from pipelines.facebook.client import GraphEndpoint
from pipelines.facebook.insights import RESUME_KEY
from pipelines.facebook.settings import DATASET_NAME, INSIGHTS_TABLE, LOAD_MEMORY_LIMIT, SOURCE_NAME, SyncOptions
from pipelines.mail_common.session import commit, open_session
from pipelines.warehouse import finish_pending, warehouse_lock, warehouse_pipeline


class SyncPieces:
    """The loads of one connection's sync. Iterate `sources()` and load each source before taking the next:
    taking the next saves the cursors the loaded piece reached; a piece that fails to load saves nothing (close
    the iterator, so its session's work database goes at once, and record the failure on the connection).
    `report` sums the pieces' reports. The C allocator's mmap threshold is held fixed for the process, so each
    load hands DuckDB's blocks back when it ends (`pipelines.facebook.allocator`)."""

    def __init__(self, registry: ConnectionRegistry, cipher, connection: Connection, endpoint: GraphEndpoint, *,
                 warehouse_path: str | Path, work_dir: str | Path, now: Callable[[], dt.datetime] | None = None,
                 options: SyncOptions | None = None, piece_rows: int | None = None) -> None:
        self.registry, self.cipher, self.endpoint = registry, cipher, endpoint
        self.connection_id = connection.connection_id
        self.warehouse_path, self.work_dir = warehouse_path, work_dir
        self.now, self.options, self.piece_rows = now, options, piece_rows
        self.account_id = registry.account(cipher, connection)
        self.reports: list[SyncReport] = []
        fix_mmap_threshold()

    @property
    def report(self) -> SyncReport:
        return SyncReport.combined(self.reports)

    def sources(self) -> Iterator[DltSource]:
        """Each piece's source, opened on the cursors the piece before saved. A piece goes on only while the
        insights' resume day moved (a run that did not select the insights leaves it where it was)."""
        while True:
            connection = self.registry.get(self.connection_id)
            resumed = connection.sync_state.get(RESUME_KEY)
            with open_session(self.registry, self.cipher, connection, self.endpoint, None,
                              warehouse_path=self.warehouse_path, work_dir=self.work_dir) as session:
                self.reports.append(session.report)
                source = facebook_source(session, self.account_id, self.now, self.options, self.piece_rows)
                yield source if len(self.reports) == 1 else source.with_resources(INSIGHTS_TABLE)
                commit(self.registry, session)
            if session.state.get(RESUME_KEY) in (None, resumed):
                return


def sync(registry: ConnectionRegistry, cipher, connection: Connection, endpoint: GraphEndpoint, *,
         warehouse_path: str | Path, dlt_dir: str | Path, work_dir: str | Path,
         now: Callable[[], dt.datetime] | None = None, options: SyncOptions | None = None,
         memory_limit: str = LOAD_MEMORY_LIMIT) -> SyncReport:
    """Sync the connection's ad account (its id is the registry's encrypted `account`) with plain dlt, piece
    after piece (what the Dagster asset does through dagster-dlt), DuckDB capped at `memory_limit` while it
    loads. A failed load marks the connection as any failed sync does."""
    with (warehouse_lock(warehouse_path, f"{SOURCE_NAME} sync of {connection.connection_id}"),
          recorded_outcome(registry, connection)):
        pipeline = warehouse_pipeline(SOURCE_NAME, DATASET_NAME, warehouse_path, dlt_dir, memory_limit=memory_limit)
        finish_pending(pipeline)
        pieces = SyncPieces(registry, cipher, connection, endpoint, warehouse_path=warehouse_path,
                            work_dir=work_dir, now=now, options=options)
        with closing(pieces.sources()) as sources:  # a failed load closes its piece's session (no cursor saved)
            for source in sources:
                pipeline.run(source).raise_on_failed_jobs()
    return pieces.report
