"""`python -m pipelines.linkedin_ads`: sync every LinkedIn Ads connection with plain dlt, no Dagster.

With GTG_ENV=sandbox the sandbox server runs in-process and its connections are registered first; in
production the real API is used with each connection's stored token. Prints counts only; a connection that
fails prints its error class (a refused token leaves it `needs_reauth`) and the others still sync (exit 1).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Sequence

from pipelines import paths
from pipelines.connections.outcome import root_cause
from pipelines.connections.registry import ConnectionRegistry
from pipelines.linkedin_ads import settings
from pipelines.linkedin_ads.sandbox import running_sandbox, seed_connections
from pipelines.linkedin_ads.sync import sync_connection
from pipelines.privacy.keyring import Keyring, platform_master_key


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipelines.linkedin_ads")
    parser.add_argument("--connection", help="sync only this connection id")
    args = parser.parse_args(argv)
    registry = ConnectionRegistry(paths.connections_path())
    failed = 0
    with Keyring.open(paths.keyring_path(), platform_master_key()) as cipher, contextlib.ExitStack() as stack:
        base_url = settings.API_BASE_URL
        if paths.is_sandbox():
            base_url = stack.enter_context(running_sandbox())
            seed_connections(registry, cipher)
        for connection in registry.list("linkedin_ads"):
            if args.connection and connection.connection_id != args.connection:
                continue
            try:
                report = sync_connection(registry, cipher, connection, base_url=base_url,
                                         warehouse_path=paths.warehouse_path(), dlt_dir=paths.dlt_dir())
            except Exception as exc:  # one account's failure (an expired token, say) must not stop the others
                failed += 1
                print(json.dumps({"connection": connection.connection_id, "error": type(root_cause(exc)).__name__}))
                continue
            print(json.dumps({"connection": connection.connection_id, **report.as_metadata()}))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
