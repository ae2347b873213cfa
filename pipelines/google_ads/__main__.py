"""`python -m pipelines.google_ads [--connection ID] [--conversion-window-days N]`: sync every syncable Google
Ads connection with plain dlt, no Dagster. With GTG_ENV=sandbox the gRPC sandbox runs in-process and its
connections are registered first; in production the developer token and OAuth client must be set
(GTG_GOOGLE_ADS_DEVELOPER_TOKEN, GTG_GOOGLE_ADS_CLIENT_ID, GTG_GOOGLE_ADS_CLIENT_SECRET). Prints counts only;
a connection that fails prints its outcome's class and the others still sync (exit status 1)."""

from __future__ import annotations

import argparse
import contextlib
import json
from typing import Sequence

from pipelines import paths
from pipelines.connections.outcome import recorded_outcome, root_cause
from pipelines.connections.registry import ConnectionRegistry
from pipelines.google_ads import SyncOptions
from pipelines.google_ads.connect import GoogleAdsApp, open_run, record_loaded, require_app_env
from pipelines.google_ads.settings import CONVERSION_WINDOW_DAYS, PROVIDER
from pipelines.google_ads.sync import load
from pipelines.privacy.keyring import Keyring, platform_master_key


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipelines.google_ads")
    parser.add_argument("--connection", help="sync only this connection id")
    parser.add_argument("--conversion-window-days", type=int, default=CONVERSION_WINDOW_DAYS)
    args = parser.parse_args(argv)
    sandbox = paths.is_sandbox()
    if not sandbox:
        require_app_env()
    registry = ConnectionRegistry(paths.connections_path())
    with Keyring.open(paths.keyring_path(), platform_master_key()) as cipher, contextlib.ExitStack() as stack:
        app, endpoint, options = GoogleAdsApp.from_env(), None, SyncOptions(args.conversion_window_days)
        if sandbox:
            from pipelines.google_ads import sandbox as ads_sandbox

            app, endpoint = ads_sandbox.sandbox_app(), stack.enter_context(ads_sandbox.running_sandbox())
            options = SyncOptions(args.conversion_window_days, history_days=ads_sandbox.HISTORY_DAYS)
            ads_sandbox.seed_connections(registry, cipher)
        failed = 0
        for connection in registry.list(PROVIDER):
            if args.connection and connection.connection_id != args.connection:
                continue
            try:
                with recorded_outcome(registry, connection):
                    run = open_run(registry, cipher, connection, app, endpoint=endpoint, options=options,
                                   warehouse_path=paths.warehouse_path())
                    load(run, warehouse_path=paths.warehouse_path(), dlt_dir=paths.dlt_dir())
                    record_loaded(registry, cipher, connection, run, registry.tokens(cipher, connection).access_token)
            except Exception as exc:  # one account's failure (an expired token, say) must not stop the others
                failed += 1
                print(json.dumps({"connection": connection.connection_id, "error": type(root_cause(exc)).__name__}))
                continue
            print(json.dumps({"connection": connection.connection_id, "stopped": run.stopped,
                              **run.report.as_metadata()}))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
