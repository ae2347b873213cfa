"""Syncing every connection of one provider outside Dagster (`python -m pipelines.<provider>`), the same for
every provider: one JSON line of counts per connection, or its error's class name — one account's failure (a
refused token, say) never stops the others, and the exit status says whether any failed."""

from __future__ import annotations

import json
from typing import Callable

from pipelines.connections.outcome import root_cause
from pipelines.connections.registry import Connection, ConnectionRegistry
from pipelines.connections.report import SyncReport


def sync_each(registry: ConnectionRegistry, provider: str, sync_one: Callable[[Connection], SyncReport],
              only: str | None = None) -> int:
    """`sync_one` for each syncable connection of `provider` (only `only`, when given); 1 if any failed."""
    failed = 0
    for connection in registry.list(provider):
        if only and connection.connection_id != only:
            continue
        try:
            report = sync_one(connection)
        except Exception as exc:  # noqa: BLE001 - reported by class name, the next connection still syncs
            failed += 1
            print(json.dumps({"connection": connection.connection_id, "error": type(root_cause(exc)).__name__}))
            continue
        print(json.dumps({"connection": connection.connection_id, **report.as_metadata()}))
    return 1 if failed else 0
