"""Google Ads sync benchmark against the gRPC sandbox, measured side by side in one run.

    python -m bench.google_ads [--days 90] [--campaigns 10] [--ad-groups 10] [--ads 5]

1. Requests per account-month of daily metrics: the source's one SearchStream per report and 14-day slice,
   against one request per report and day (what a per-day loop, or dlt's verified source run day by day, asks).
   Counted by the sandbox server itself, for one account and 30 days.
2. Rows per second through the source and the merge (google-ads client -> arrow -> dlt merge into DuckDB) for a
   first sync of every report over `--days` days, and for the next run (the conversion window re-read and
   merged), against a DuckDB bare insert of the same rows (the loaded tables copied, as arrow, into new tables).
3. Entity rows read by the next sync when `--changed` campaigns per account changed an hour before: the source's
   change_status query and re-read of what it names, against listing every campaign, ad group, ad and keyword
   again (what it does on a first sync).
The sandbox runs in its own process (`python -m pipelines.sandbox.google_ads`), so its work is not counted
against the source; requests are counted by the source's report, which the tests prove equal to the server's count.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import duckdb

from pipelines.connections.report import SyncReport
from pipelines.google_ads import GoogleAdsRun, SyncOptions
from pipelines.google_ads.client import AdsAccess, AdsApi, ads_client
from pipelines.google_ads.rows import query_of
from pipelines.google_ads.settings import DAILY_STREAMS, DATASET_NAME, ENTITY_STREAMS, TABLES
from pipelines.google_ads.sync import load
from pipelines.google_ads.windows import local_yesterday
from pipelines.sandbox.google_ads import ACCESS_TOKEN, DEVELOPER_TOKEN, MANAGER_ID
from pipelines.sandbox.google_ads.tls import ROOTS_VARIABLE

NOW = dt.datetime(2026, 12, 2, 12, 0, tzinfo=dt.timezone.utc)
ACCOUNT = "1000000002"


@contextmanager
def sandbox_process(args: argparse.Namespace) -> Iterator[str]:
    """The sandbox in a child process; yields its endpoint, this process trusting its certificate."""
    command = [sys.executable, "-m", "pipelines.sandbox.google_ads", "--now", NOW.isoformat(),
               "--history-days", str(args.days + 5), "--campaigns", str(args.campaigns),
               "--ad-groups", str(args.ad_groups), "--ads", str(args.ads), "--keywords", "2",
               "--changed-campaigns", str(args.changed)]
    child = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        started = json.loads(child.stdout.readline())
        os.environ[ROOTS_VARIABLE] = started["certificate"]
        yield started["endpoint"]
    finally:
        child.stdin.close()
        child.wait(timeout=30)


def _run(endpoint: str, root: Path, state: dict, days: int, now: dt.datetime = NOW) -> GoogleAdsRun:
    report = SyncReport("bench-google-ads", "google_ads")
    access = AdsAccess(DEVELOPER_TOKEN, MANAGER_ID, access_token=ACCESS_TOKEN, endpoint=endpoint)
    return GoogleAdsRun(AdsApi(ads_client(access), report), "bench-google-ads", "ws_bench", MANAGER_ID, state,
                        report, SyncOptions(history_days=days, clock=lambda: now),
                        warehouse_path=root / "warehouse.duckdb")


def entity_resync(endpoint: str, root: Path) -> dict[str, tuple[int, int, float]]:
    """(entity rows read, requests, seconds) of the next sync's entity listings, by way of reading them."""
    earlier = _run(endpoint, root, {}, 1, NOW - dt.timedelta(hours=2))
    for stream in ENTITY_STREAMS:  # a first sync two hours ago: every entity listed, the cursors set
        for _ in earlier.entities(stream):
            pass
    figures = {}
    for label, state in (("change_status", earlier.state), ("full listing", {})):
        run = _run(endpoint, root, json.loads(json.dumps(state)), 1)
        run.clients()
        before, started = run.report.http_requests, time.perf_counter()
        rows = sum(t.num_rows for stream in ENTITY_STREAMS for t in run.entities(stream))
        figures[label] = (rows, run.report.http_requests - before, time.perf_counter() - started)
    return figures


def requests_per_account_month(endpoint: str, root: Path) -> tuple[int, int]:
    """(source's SearchStream calls, per-day calls) for the three reports of one account over 30 days."""
    run = _run(endpoint, root, {}, 30)
    client = next(c for c in run.clients() if c["customer_id"] == ACCOUNT)
    before = run.report.http_requests
    for stream in DAILY_STREAMS:  # the source's own reading of the reports, for this account only, without loading
        run.clients = lambda: [client]  # type: ignore[method-assign]
        for _ in run.daily(stream):
            pass
    ours = run.report.http_requests - before
    before = run.report.http_requests
    yesterday = local_yesterday(NOW, client["time_zone"])
    for stream in DAILY_STREAMS:
        for n in range(30):
            day = yesterday - dt.timedelta(days=n)
            run.api.stream(ACCOUNT, query_of(stream, day, day))
    return ours, run.report.http_requests - before


def rows_per_second(endpoint: str, root: Path, days: int) -> dict[str, float]:
    state: dict = {}
    figures: dict[str, float] = {}
    for label in ("first sync", "next sync"):
        run = _run(endpoint, root, state, days)
        started = time.perf_counter()
        load(run, warehouse_path=root / "warehouse.duckdb", dlt_dir=root / "dlt")
        seconds = time.perf_counter() - started
        state = run.state
        rows = sum(c.inserted + c.updated for c in run.report.streams.values())
        figures[f"{label} rows"] = rows
        figures[f"{label} rows/s"] = rows / seconds
    with duckdb.connect(str(root / "warehouse.duckdb"), read_only=True) as con:
        tables = {t: con.sql(f"SELECT * FROM {DATASET_NAME}.{t}").to_arrow_table() for t in TABLES}
    rows = sum(t.num_rows for t in tables.values())
    with duckdb.connect(str(root / "bare.duckdb")) as bare:
        started = time.perf_counter()
        for name, table in tables.items():
            bare.register("incoming", table)
            bare.execute(f"CREATE TABLE {name} AS SELECT * FROM incoming")
            bare.unregister("incoming")
        seconds = time.perf_counter() - started
    figures["bare insert rows"] = rows
    figures["bare insert rows/s"] = rows / seconds
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.google_ads", description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--campaigns", type=int, default=10)
    parser.add_argument("--ad-groups", type=int, default=10)
    parser.add_argument("--ads", type=int, default=5)
    parser.add_argument("--changed", type=int, default=2, help="campaigns per account changed before the next sync")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp, sandbox_process(args) as endpoint:
        root = Path(tmp)
        ours, per_day = requests_per_account_month(endpoint, root)
        print(f"requests per account-month (3 daily reports, 30 days): source {ours} SearchStream calls, "
              f"one per report and day {per_day}: {per_day / ours:.1f}x fewer")
        figures = rows_per_second(endpoint, root, args.days)
        for label in ("first sync", "next sync"):
            print(f"{label}: {figures[f'{label} rows']:,.0f} rows through source + merge at "
                  f"{figures[f'{label} rows/s']:,.0f} rows/s; DuckDB bare insert of the "
                  f"{figures['bare insert rows']:,.0f} loaded rows {figures['bare insert rows/s']:,.0f} rows/s: "
                  f"{figures['bare insert rows/s'] / figures[f'{label} rows/s']:.1f}x the source's rate")
        resync = entity_resync(endpoint, root)
        (rows, requests, seconds), (all_rows, all_requests, all_seconds) = resync["change_status"], resync["full listing"]
        print(f"next entity sync, {args.changed} campaigns per account changed: change_status {rows:,} rows in "
              f"{requests} requests {seconds:.2f} s; listing everything {all_rows:,} rows in {all_requests} requests "
              f"{all_seconds:.2f} s: {all_rows / max(rows, 1):.0f}x fewer rows, {all_seconds / seconds:.1f}x faster")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
