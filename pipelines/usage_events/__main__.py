"""Run the events source on its own, without Dagster: `python -m pipelines.usage_events [--landing URL]`.

Paths default to the platform's (see `pipelines.paths`); the keyring comes from GTG_MASTER_KEY or the
master key file; the known workspaces from the workspace and mail connection registries. Prints counts, reason
codes and landed file paths only.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict

from pipelines import paths
from pipelines.privacy.keyring import Keyring, platform_master_key
from pipelines.usage_events import ingest
from pipelines.warehouse import WarehouseBusy
from pipelines.workspaces import known_workspaces


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipelines.usage_events", description=__doc__.splitlines()[0])
    parser.add_argument("--landing", default=paths.events_landing_url(), help="landing folder or fsspec URL")
    parser.add_argument("--warehouse", default=str(paths.warehouse_path()), help="DuckDB warehouse file")
    args = parser.parse_args(argv)
    try:
        with Keyring.open(paths.keyring_path(), platform_master_key()) as cipher:
            report = ingest(args.landing, cipher, warehouse_path=args.warehouse, dlt_dir=paths.dlt_dir(),
                            work_dir=paths.work_dir(),
                            workspaces=known_workspaces(paths.workspaces_path(), paths.connections_path()))
    except WarehouseBusy as busy:
        print(f"stopped: {busy}", file=sys.stderr)
        return 3
    print(json.dumps({**asdict(report), "quarantine_share": report.quarantine_share}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
