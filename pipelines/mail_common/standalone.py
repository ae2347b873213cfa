"""`python -m pipelines.gmail` / `python -m pipelines.outlook`: sync every active connection of one provider
with plain dlt, no Dagster. With GTG_ENV=sandbox the sandbox servers run in-process and the sandbox
connections are registered first; in production every OAuth variable must be set. Prints counts only; a
connection that fails (an expired token, say) prints its error's class name and the others still sync (exit
status 1)."""

from __future__ import annotations

import argparse
import contextlib
import json
from typing import Any, Callable, Sequence

from pipelines import paths
from pipelines.connections.outcome import root_cause
from pipelines.connections.registry import ConnectionRegistry
from pipelines.mail_common.endpoints import REAL_ENDPOINTS, OAuthApps, require_oauth_env
from pipelines.mail_common.sandbox import running_sandbox, sandbox_accounts, seed_connections
from pipelines.mail_common.session import SyncSession, sync_connection
from pipelines.privacy.keyring import Keyring, platform_master_key


def main(provider: str, make_source: Callable[[SyncSession], Any], pipeline_name: str, dataset: str,
         argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m pipelines.{provider}")
    parser.add_argument("--connection", help="sync only this connection id")
    args = parser.parse_args(argv)
    sandbox = paths.is_sandbox()
    if not sandbox:
        require_oauth_env()
    oauth = OAuthApps.from_env()
    key = platform_master_key()
    registry = ConnectionRegistry(paths.connections_path())
    with Keyring.open(paths.keyring_path(), key) as cipher, contextlib.ExitStack() as stack:
        endpoints = REAL_ENDPOINTS
        if sandbox:
            accounts = sandbox_accounts()
            endpoints = stack.enter_context(running_sandbox(accounts))
            seed_connections(registry, cipher, accounts)
        failed = 0
        for connection in registry.list(provider):
            if args.connection and connection.connection_id != args.connection:
                continue
            try:
                report = sync_connection(registry, cipher, connection, make_source, pipeline_name=pipeline_name,
                                         dataset=dataset, endpoints=endpoints, oauth=oauth,
                                         warehouse_path=paths.warehouse_path(), dlt_dir=paths.dlt_dir(),
                                         work_dir=paths.work_dir())
            except Exception as exc:  # one account's failure (a revoked token, say) must not stop the others
                failed += 1
                print(json.dumps({"connection": connection.connection_id, "error": type(root_cause(exc)).__name__}))
                continue
            print(json.dumps({"connection": connection.connection_id, **report.as_metadata()}))
    return 1 if failed else 0
