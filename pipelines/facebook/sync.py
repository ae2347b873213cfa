"""One Meta connection's sync with plain dlt (what the Dagster asset does through dagster-dlt)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Callable

from pipelines.connections.registry import Connection, ConnectionRegistry
from pipelines.connections.report import SyncReport
from pipelines.facebook import facebook_source
from pipelines.facebook.client import GraphEndpoint
from pipelines.facebook.settings import DATASET_NAME, SOURCE_NAME, SyncOptions
from pipelines.mail_common.session import sync_connection


def sync(registry: ConnectionRegistry, cipher, connection: Connection, endpoint: GraphEndpoint, *,
         warehouse_path: str | Path, dlt_dir: str | Path, work_dir: str | Path,
         now: Callable[[], dt.datetime] | None = None, options: SyncOptions | None = None) -> SyncReport:
    """Sync the connection's ad account (its id is the registry's encrypted `account`)."""
    account_id = registry.account(cipher, connection)
    return sync_connection(registry, cipher, connection, lambda session: facebook_source(session, account_id, now, options),
                           pipeline_name=SOURCE_NAME, dataset=DATASET_NAME, endpoints=endpoint, oauth=None,
                           warehouse_path=warehouse_path, dlt_dir=dlt_dir, work_dir=work_dir)
