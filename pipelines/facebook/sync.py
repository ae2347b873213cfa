"""One Meta connection's sync with plain dlt (what the Dagster asset does through dagster-dlt)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Callable

from pipelines.connections.registry import Connection, ConnectionRegistry
from pipelines.connections.report import SyncReport
from pipelines.facebook import facebook_source
from pipelines.facebook.client import GraphEndpoint
from pipelines.facebook.insights import RESUME_KEY
from pipelines.facebook.settings import DATASET_NAME, INSIGHTS_TABLE, SOURCE_NAME, SyncOptions
from pipelines.mail_common.session import sync_connection


def sync(registry: ConnectionRegistry, cipher, connection: Connection, endpoint: GraphEndpoint, *,
         warehouse_path: str | Path, dlt_dir: str | Path, work_dir: str | Path,
         now: Callable[[], dt.datetime] | None = None, options: SyncOptions | None = None) -> SyncReport:
    """Sync the connection's ad account (its id is the registry's encrypted `account`): the whole source in one
    load, then, while its insights stopped after a piece, the next piece of insights in a load of its own
    (each load saves the cursors it reached, so a crash between pieces resumes where the last one ended)."""
    account_id = registry.account(cipher, connection)
    pieces: list[SyncReport] = []
    while True:
        def piece(session, whole: bool = not pieces):
            source = facebook_source(session, account_id, now, options)
            return source if whole else source.with_resources(INSIGHTS_TABLE)

        pieces.append(sync_connection(registry, cipher, connection, piece, pipeline_name=SOURCE_NAME,
                                      dataset=DATASET_NAME, endpoints=endpoint, oauth=None,
                                      warehouse_path=warehouse_path, dlt_dir=dlt_dir, work_dir=work_dir))
        connection = registry.get(connection.connection_id)
        if not connection.sync_state.get(RESUME_KEY):
            return SyncReport.combined(pieces)

