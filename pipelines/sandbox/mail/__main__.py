"""`python -m pipelines.sandbox.mail`: run the Google and Graph sandboxes until interrupted.

Why it exists: `dagster dev` and manual runs of the mail sources need the servers outside a test process.
Prints one JSON line with the base URLs and each account's address, Graph user id and token (sandbox
tokens, not secrets), then serves until SIGINT or SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from collections.abc import Sequence

from pipelines.sandbox.mail.google_server import GoogleServer
from pipelines.sandbox.mail.graph_server import GraphServer
from pipelines.sandbox.mail.mailbox import build_accounts


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipelines.sandbox.mail", description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=2)
    parser.add_argument("--messages", type=int, default=2000, help="messages per account")
    parser.add_argument("--contacts", type=int, default=200, help="contacts per account")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--google-port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--graph-port", type=int, default=0, help="0 picks a free port")
    args = parser.parse_args(argv)
    accounts = build_accounts(args.accounts, args.messages, args.contacts, args.seed)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with GoogleServer(accounts, args.host, args.google_port) as google, \
            GraphServer(accounts, args.host, args.graph_port) as graph:
        print(json.dumps({
            "google_url": google.url, "gmail_batch_url": f"{google.url}/batch/gmail/v1",
            "graph_url": f"{graph.url}/v1.0",
            "accounts": [{"email": a.email, "graph_user_id": a.user_id, "token": a.token,
                          "messages": len(a.messages), "contacts": len(a.contacts)} for a in accounts],
        }), flush=True)
        try:
            stop.wait()
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
