"""`python -m pipelines.facebook`: sync every Meta ad-account connection with plain dlt, no Dagster. With
GTG_ENV=sandbox the Graph API sandbox runs in-process and its connections are registered first; in production
the real Graph API is used (GTG_META_APP_ID / GTG_META_APP_SECRET sign requests when set). Prints counts only;
a connection that fails prints its error's class name and the others still sync (exit status 1)."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from typing import Sequence

from pipelines import paths
from pipelines.connections.registry import ConnectionRegistry
from pipelines.connections.standalone import sync_each
from pipelines.facebook.client import GraphEndpoint
from pipelines.facebook.sandbox import running_sandbox, sandbox_world, seed_connections
from pipelines.facebook.settings import APP_ENV, PROVIDER
from pipelines.facebook.sync import sync
from pipelines.privacy.keyring import Keyring, platform_master_key


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipelines.facebook")
    parser.add_argument("--connection", help="sync only this connection id")
    args = parser.parse_args(argv)
    registry = ConnectionRegistry(paths.connections_path())
    with Keyring.open(paths.keyring_path(), platform_master_key()) as cipher, contextlib.ExitStack() as stack:
        endpoint = GraphEndpoint(**{field: os.environ.get(name) for field, name in APP_ENV.items()})
        if paths.is_sandbox():
            world = sandbox_world()
            endpoint = stack.enter_context(running_sandbox(world))
            seed_connections(registry, cipher, world)
        return sync_each(registry, PROVIDER, lambda connection: sync(
            registry, cipher, connection, endpoint, warehouse_path=paths.warehouse_path(), dlt_dir=paths.dlt_dir(),
            work_dir=paths.work_dir()), only=args.connection)


if __name__ == "__main__":
    sys.exit(main())
