"""`python -m pipelines.crm_app`: sync the CRM app database with plain dlt, no Dagster. GTG_CRM_APP_DATABASE_URL
names the app database; in the sandbox, without it, the generated SQLite app database is used (created the
first time, `--advance` plays one round of app activity first). Prints counts only; exits 3 when the removal
guard refused a table's removals (`--allow-removals TABLE[,TABLE]` allows them for this sync)."""

from __future__ import annotations

import argparse
import json
import os
import sys

from pipelines import paths
from pipelines.crm_app import RemovalGuard, RemovalsRefused, sandbox, sync
from pipelines.crm_app.settings import ALLOW_REMOVALS_ENV, DATABASE_URL_ENV
from pipelines.privacy.keyring import Keyring, platform_master_key
from pipelines.privacy.requests import Inbox
from pipelines.workspaces import WorkspaceRegistry


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipelines.crm_app")
    parser.add_argument("--advance", action="store_true", help="sandbox only: change the app database first")
    parser.add_argument("--allow-removals", metavar="TABLES", default=os.environ.get(ALLOW_REMOVALS_ENV, ""),
                        help="this sync only: remove the rows these tables (comma-separated, * for all) lost in the "
                        f"app however many they are (default: {ALLOW_REMOVALS_ENV})")
    args = parser.parse_args(argv)
    url = os.environ.get(DATABASE_URL_ENV)
    if not url:
        if not paths.is_sandbox():
            print(f"refused: {DATABASE_URL_ENV} is not set", file=sys.stderr)
            return 2
        paths.private_dir(paths.crm_app_sandbox_path().parent)
        url = sandbox.sandbox_url(paths.crm_app_sandbox_path())
        sandbox.create(url)
        if args.advance:
            print(json.dumps(sandbox.advance(url)))
    try:
        with Keyring.open(paths.keyring_path(), platform_master_key()) as cipher:
            counts = sync(url, cipher, warehouse_path=paths.warehouse_path(), dlt_dir=paths.dlt_dir(),
                          work_dir=paths.work_dir(), inbox=Inbox(paths.request_inbox_path()),
                          registry=WorkspaceRegistry(paths.workspaces_path()),
                          guard=RemovalGuard.allowing(args.allow_removals))
    except RemovalsRefused as refusal:
        print(f"refused: {refusal}", file=sys.stderr)
        return 3
    for table, table_counts in counts.items():
        print(json.dumps({"table": table, **table_counts.as_metadata()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
