"""`python -m pipelines.sandbox.google_ads [--now ISO] [--history-days N] [--campaigns N] ...`: serve the Google Ads
sandbox on a free port of 127.0.0.1 until stdin closes or the process is stopped.

Prints one JSON line first: the endpoint, the certificate file a client process must trust (point
GRPC_DEFAULT_SSL_ROOTS_FILE_PATH at it before opening a channel), the access and developer tokens and the manager's
customer id. Benchmarks run it this way so the server's work does not share the client's interpreter.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys

from pipelines.sandbox.google_ads import ACCESS_TOKEN, DEVELOPER_TOKEN, MANAGER_ID, GoogleAdsSandbox, build_world
from pipelines.sandbox.google_ads.tls import sandbox_certificate
from pipelines.sandbox.google_ads.world import utc_now


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipelines.sandbox.google_ads")
    parser.add_argument("--now", type=dt.datetime.fromisoformat, help="a fixed clock (ISO instant with offset)")
    parser.add_argument("--history-days", type=int, default=60)
    parser.add_argument("--campaigns", type=int, default=3)
    parser.add_argument("--ad-groups", type=int, default=2)
    parser.add_argument("--ads", type=int, default=2)
    parser.add_argument("--keywords", type=int, default=3)
    parser.add_argument("--changed-campaigns", type=int, default=0,
                        help="campaigns of each client renamed an hour before the clock (what change_status reports)")
    args = parser.parse_args(argv)
    clock = (lambda: args.now) if args.now else utc_now
    world = build_world(history_days=args.history_days, clock=lambda: clock() - dt.timedelta(hours=1),
                        campaigns=args.campaigns, ad_groups=args.ad_groups, ads=args.ads, keywords=args.keywords)
    for customer in world.clients():
        for campaign in [c for c in world.campaigns if c.customer_id == customer.customer_id][:args.changed_campaigns]:
            world.rename_campaign(campaign.campaign_id, f"{campaign.name} (renamed)")
    world.clock = clock
    with GoogleAdsSandbox(world) as sandbox:
        print(json.dumps({"endpoint": sandbox.endpoint, "certificate": str(sandbox_certificate().path),
                          "access_token": ACCESS_TOKEN, "developer_token": DEVELOPER_TOKEN, "manager": MANAGER_ID}),
              flush=True)
        sys.stdin.read()  # serve until the parent closes our stdin (or stops us)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
