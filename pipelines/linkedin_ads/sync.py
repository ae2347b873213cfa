"""One LinkedIn Ads connection's sync with plain dlt (what the Dagster asset does through dagster-dlt), and
the keys the warehouse already holds for it.

The cursors are saved only after dlt has loaded the rows they account for; a failed sync leaves its status on
the connection (`needs_reauth` after a 401, `erroring` otherwise) through the shared `recorded_outcome`.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Callable

import dlt
import duckdb

from pipelines.connections.outcome import recorded_outcome
from pipelines.connections.registry import Connection, ConnectionRegistry
from pipelines.connections.report import SyncReport
from pipelines.linkedin_ads import settings
from pipelines.linkedin_ads.source import AdsSync, linkedin_ads_source
from pipelines.sql import ident
from pipelines.warehouse import finish_pending, table_exists, warehouse_lock, warehouse_pipeline


def known_keys(con: duckdb.DuckDBPyConnection, connection_id: str) -> dict[str, set[tuple]]:
    """Per table, the keys (without the connection) the warehouse holds for `connection_id`."""
    known: dict[str, set[tuple]] = {}
    for table, columns in settings.TABLES.items():
        if not table_exists(con, settings.DATASET_NAME, table):
            continue
        keys = [name for name, column in columns.items() if column.get("primary_key") and name != "connection_id"]
        rows = con.execute(f"SELECT {', '.join(ident(k) for k in keys)} FROM "
                           f"{ident(settings.DATASET_NAME)}.{ident(table)} WHERE connection_id = ?",
                           [connection_id]).fetchall()
        known[table] = set(rows)
    return known


def new_sync(registry: ConnectionRegistry, cipher, connection: Connection, base_url: str,
             warehouse_path: str | Path, **options) -> AdsSync:
    """The `AdsSync` of a connection: its token, its cursors and the keys the warehouse holds."""
    tokens = registry.tokens(cipher, connection)
    with duckdb.connect(str(warehouse_path)) as con:
        known = known_keys(con, connection.connection_id)
    return AdsSync(connection.connection_id, connection.workspace_id, tokens.access_token or "",
                   SyncReport(connection.connection_id, "linkedin_ads"), base_url, dict(connection.sync_state),
                   known, **options)


def sync_connection(registry: ConnectionRegistry, cipher, connection: Connection, *, base_url: str,
                    warehouse_path: str | Path, dlt_dir: str | Path,
                    now: Callable[[], dt.datetime] | None = None) -> SyncReport:
    """Sync one connection into the warehouse; returns its report."""
    options = {"now": now} if now else {}
    with warehouse_lock(warehouse_path, f"linkedin_ads sync of {connection.connection_id}"):
        pipeline: dlt.Pipeline = warehouse_pipeline(settings.SOURCE_NAME, settings.DATASET_NAME, warehouse_path,
                                                    dlt_dir)
        finish_pending(pipeline)
        with recorded_outcome(registry, connection):
            sync = new_sync(registry, cipher, connection, base_url, warehouse_path, **options)
            pipeline.run(linkedin_ads_source(sync)).raise_on_failed_jobs()
            registry.save_state(connection.connection_id, sync.state)
    return sync.report
