"""`python -m pipelines.sandbox.linkedin_ads`: run the LinkedIn Ads sandbox until interrupted.

Prints one JSON line with the base URL and each member's token (sandbox tokens, not secrets) and ad
account ids, then serves until SIGINT or SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from collections.abc import Sequence

from pipelines.sandbox.linkedin_ads import LinkedInAdsServer, build_data


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipelines.sandbox.linkedin_ads", description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--days", type=int, default=60, help="days of history per account")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    args = parser.parse_args(argv)
    data = build_data(args.seed, history_days=args.days)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with LinkedInAdsServer(data, args.host, args.port) as server:
        print(json.dumps({"url": f"{server.url}/rest", "members": [
            {"token": m.token, "ad_accounts": m.account_ids} for m in data.members]}), flush=True)
        try:
            stop.wait()
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
