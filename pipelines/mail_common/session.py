"""One connection's sync: its secrets, cursors, work database and report, and the run around a provider source.

A provider source takes a `SyncSession` and yields protected rows; it reads its cursors from
`session.state` and writes the new ones there. Only after dlt has loaded everything are the new cursors
saved to the registry (`commit`), so an interrupted sync is repeated from the old cursors (merge on the
primary key makes the repeat harmless) instead of skipping changes. A failed sync changes the connection's
status as for every provider (`pipelines.connections.outcome`).
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import dlt

from pipelines.connections.outcome import recorded_outcome
from pipelines.connections.registry import Connection, ConnectionRegistry, Tokens
from pipelines.connections.report import SyncReport
from pipelines.mail_common.endpoints import Endpoints, OAuthApps
from pipelines.mail_common.stage import Stream, StreamWriter, WorkDatabase
from pipelines.warehouse import finish_pending, warehouse_lock, warehouse_pipeline


class SyncSession:
    """Everything a provider source needs for one connection."""

    def __init__(self, connection: Connection, tokens: Tokens, cipher, endpoints: Endpoints, oauth: OAuthApps,
                 work: WorkDatabase) -> None:
        self.connection = connection
        self.tokens = tokens
        self.cipher = cipher
        self.endpoints = endpoints
        self.oauth = oauth
        self.work = work
        self.state: dict[str, Any] = dict(connection.sync_state)
        self.report = SyncReport(connection.connection_id, connection.provider)
        self.refreshed_access_token: str | None = None  # set by a client that refreshed it

    def writer(self, stream: Stream) -> StreamWriter:
        """A writer for `stream`, knowing which ids the warehouse holds for this connection."""
        return StreamWriter(stream, self.work.con, self.cipher, self.connection.connection_id,
                            self.connection.workspace_id, self.work.existing(stream, self.connection.connection_id),
                            self.report.stream(stream.table))


@contextmanager
def open_session(registry: ConnectionRegistry, cipher, connection: Connection, endpoints: Endpoints,
                 oauth: OAuthApps, *, warehouse_path: str | Path, work_dir: str | Path) -> Iterator[SyncSession]:
    """A session whose failure marks the connection erroring; the caller commits after loading."""
    work = WorkDatabase(work_dir, warehouse_path)
    session = SyncSession(connection, registry.tokens(cipher, connection), cipher, endpoints, oauth, work)
    try:
        with recorded_outcome(registry, connection):
            yield session
    finally:
        work.close()


def commit(registry: ConnectionRegistry, session: SyncSession) -> None:
    """Save the session's cursors (and a refreshed access token): call once its rows are loaded."""
    if session.refreshed_access_token:
        registry.store_access_token(session.cipher, session.connection, session.refreshed_access_token)
    registry.save_state(session.connection.connection_id, session.state)


def sync_connection(registry: ConnectionRegistry, cipher, connection: Connection,
                    make_source: Callable[[SyncSession], Any], *, pipeline_name: str, dataset: str,
                    endpoints: Endpoints, oauth: OAuthApps, warehouse_path: str | Path, dlt_dir: str | Path,
                    work_dir: str | Path) -> SyncReport:
    """Sync one connection with plain dlt (what the Dagster asset does through dagster-dlt)."""
    with warehouse_lock(warehouse_path, f"{pipeline_name} sync of {connection.connection_id}"):
        pipeline: dlt.Pipeline = warehouse_pipeline(pipeline_name, dataset, warehouse_path, dlt_dir)
        finish_pending(pipeline)
        with open_session(registry, cipher, connection, endpoints, oauth, warehouse_path=warehouse_path,
                          work_dir=work_dir) as session:
            pipeline.run(make_source(session)).raise_on_failed_jobs()
            commit(registry, session)
    return session.report
