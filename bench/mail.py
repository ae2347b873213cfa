"""Gmail sync benchmark against the sandbox: messages per second and HTTP requests per 1,000 messages for a
full and an incremental sync, beside naive per-message fetching, measured in one run.

    python -m bench.mail [--messages 10000] [--naive 500]

The full sync lists 500 ids per page and fetches them in batches of 100 (target: at most 12 requests per
1,000 messages); the naive baseline lists the same way but fetches each message with its own request, timed
on a sample and reported per 1,000 messages. The incremental sync follows a 2 % change (new, relabelled and
deleted messages) and is reported per 1,000 changed messages. Counts come from the sandbox server itself.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from google.oauth2.credentials import Credentials
from googleapiclient.discovery import build

from pipelines.connections.registry import ConnectionRegistry
from pipelines.gmail import gmail_source
from pipelines.gmail.settings import DATASET_NAME, LIST_PAGE_SIZE, SOURCE_NAME
from pipelines.mail_common.endpoints import Endpoints, OAuthApps
from pipelines.mail_common.sandbox import seed_connections
from pipelines.mail_common.session import sync_connection
from pipelines.privacy.keyring import Keyring, load_master_key
from pipelines.sandbox.mail import GoogleServer, build_accounts

CONNECTION = "bench-gmail-0"


def _gmail_requests(server: GoogleServer) -> int:
    return sum(n for endpoint, n in server.http_requests.items() if not endpoint.startswith("people."))


def _naive(server: GoogleServer, token: str, sample: int) -> tuple[float, int]:
    """Seconds and requests to list and fetch `sample` messages one request each."""
    gmail = build("gmail", "v1", credentials=Credentials(token=token), static_discovery=True,
                  client_options={"api_endpoint": server.url})
    server.reset_counts()
    started = time.perf_counter()
    ids: list[str] = []
    page = gmail.users().messages().list(userId="me", maxResults=LIST_PAGE_SIZE).execute()
    ids += [m["id"] for m in page.get("messages", [])]
    for message_id in ids[:sample]:
        gmail.users().messages().get(userId="me", id=message_id, format="full").execute()
    return time.perf_counter() - started, _gmail_requests(server)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.mail", description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--naive", type=int, default=500, help="messages fetched one by one for the baseline")
    args = parser.parse_args(argv)
    accounts = build_accounts(1, messages=args.messages, contacts=0, seed=3)
    account = accounts[0]
    with tempfile.TemporaryDirectory() as tmp, GoogleServer(accounts) as google:
        root = Path(tmp)
        registry = ConnectionRegistry(root / "connections.sqlite")
        endpoints = Endpoints(google.url, f"{google.url}/batch/gmail/v1")
        with Keyring.open(root / "keyring.sqlite", load_master_key(None, root / "master.key", True)) as cipher:
            seed_connections(registry, cipher, accounts, (("ws_bench", "gmail", 0),))
            connection_id = registry.list()[0].connection_id

            def sync() -> tuple[float, int]:
                google.reset_counts()
                started = time.perf_counter()
                sync_connection(registry, cipher, registry.get(connection_id), gmail_source,
                                pipeline_name=SOURCE_NAME, dataset=DATASET_NAME, endpoints=endpoints,
                                oauth=OAuthApps(), warehouse_path=root / "warehouse.duckdb", dlt_dir=root / "dlt",
                                work_dir=root / "work")
                return time.perf_counter() - started, _gmail_requests(google)

            full_s, full_requests = sync()
            existing = list(account.messages)
            change = max(1, args.messages // 150)  # 3 x 0.67 % = 2 %
            account.add_messages(change)
            account.relabel(existing[:change], add=["Label_4"])
            account.delete_messages(existing[-change:])
            incremental_s, incremental_requests = sync()
            changed = 3 * change
        naive_s, naive_requests = _naive(google, account.token, args.naive)
    rows = [
        ("full sync (batched)", args.messages, full_s, full_requests),
        ("incremental sync (history)", changed, incremental_s, incremental_requests),
        (f"naive per-message fetch ({args.naive} sample)", args.naive, naive_s, naive_requests),
    ]
    print(f"Gmail sync against the sandbox, {args.messages} messages (2 cores; includes encryption and the dlt load)")
    print(f"{'sync':44} {'messages':>9} {'seconds':>8} {'msg/s':>8} {'HTTP req':>9} {'req / 1,000 msg':>16}")
    for name, count, seconds, requests in rows:
        print(f"{name:44} {count:9d} {seconds:8.2f} {count / seconds:8.0f} {requests:9d} {1000 * requests / count:16.1f}")
    per_1000 = 1000 * full_requests / args.messages
    print(f"target <= 12 requests per 1,000 messages on a full sync: {'met' if per_1000 <= 12 else 'MISSED'} "
          f"({per_1000:.1f}); naive fetching needs {1000 * naive_requests / args.naive:.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
