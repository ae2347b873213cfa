"""Meta ads sync benchmark against the Graph API sandbox, measured side by side in one run.

    python -m bench.facebook_ads [--ads 1000] [--days 30] [--naive-ads 50] [--big-ads 10000] [--big-days 7]
                                 [--piece-rows 100000]

1. Insights requests of a full sync of `--ads` x `--days` (default 1,000 ads x 30 days): async report runs
   with paging (what the source does) against a naive loop asking each ad for each day
   (`GET /AD_ID/insights`, timed on a sample of ads; it needs one request per ad and day). Counted by the
   sandbox server.
2. Sync time of one account of `--big-ads` x `--big-days` (insights with their action rows, structure, leads;
   every request counted; `--big-days 90` is the issue's 10,000 ads x 90 days, about 15 minutes on two busy cores)
   against a DuckDB bare insert of the same insights rows from the sandbox's JSON (`read_json` of one file):
   what the source costs over loading the bytes, wall and CPU (the sync process's own CPU; the bare
   insert's, DuckDB's threads included).
3. Peak memory of the sync process (RSS, the sync running in its own process against the server in this one)
   at `--ads` and at `--big-ads` ads, both over `--big-days` days, side by side: the source streams page by
   page (structure and insights 500 rows at a time, each page encrypted and handed to dlt) and loads a big
   sync in pieces of about `--piece-rows` insight rows (default `SyncOptions.piece_rows`), one dlt load
   each, so no load holds more rows than a piece; across pieces DuckDB's cache fills towards the source's
   load cap (`--load-memory-limit`, default the source's `LOAD_MEMORY_LIMIT`).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import duckdb
from facebook_business.adobjects.ad import Ad
from facebook_business.api import FacebookAdsApi
from facebook_business.session import FacebookSession

from pipelines.connections.registry import ConnectionRegistry
from pipelines.facebook.client import GraphEndpoint
from pipelines.facebook.sandbox import seed_connections
from pipelines.facebook.settings import API_VERSION, INSIGHT_FIELDS, LOAD_MEMORY_LIMIT, SANDBOX_OPTIONS
from pipelines.facebook.sync import sync
from pipelines.privacy.keyring import Keyring, load_master_key
from pipelines.sandbox.facebook import FacebookServer, World, build_world

NOW = dt.datetime(2026, 11, 30, 12, 0, tzinfo=dt.timezone.utc)
CONNECTION = "ws_bench-facebook_ads-0"
PEAK_FILE = "peak_rss_kb"
INSIGHT_ENDPOINTS = ("insights.async", "report_run", "report_run.insights", "insights", "ad.insights")


def _world(ads: int, days: int) -> World:
    """One ad account of `ads` ads (10 campaigns, 10 ad sets each) and `days` days of insights."""
    return build_world(11, campaigns=10, adsets=10, ads=max(1, ads // 100), days=days, leads=20, now=NOW, accounts=1)


def _insight_requests(server: FacebookServer) -> int:
    return sum(server.http_requests[e] for e in INSIGHT_ENDPOINTS)


def _naive(server: FacebookServer, world: World, sample: int, days: int) -> tuple[float, int]:
    """Seconds and requests for `sample` ads, one request per ad and day."""
    account = world.accounts[0]
    session = FacebookSession(access_token=account.token)
    session.GRAPH = server.url
    api = FacebookAdsApi(session, API_VERSION)
    ads = sorted(o.id for o in account.of_kind("ad"))[:sample]
    server.usage_per_call = 0  # counted, not throttled: Meta would refuse such a loop long before it ends
    server.reset_counts()
    started = time.perf_counter()
    for ad_id in ads:
        for offset in range(days):
            day = (account.first_day + dt.timedelta(days=offset)).isoformat()
            list(Ad(ad_id, api=api).get_insights(fields=list(INSIGHT_FIELDS), params={
                "level": "ad", "time_increment": 1, "time_range": {"since": day, "until": day}}))
    return time.perf_counter() - started, _insight_requests(server)


def _bare_insert(server: FacebookServer, world: World, root: Path) -> tuple[float, float, int]:
    """Seconds (wall, CPU) to load the account's insights rows, as the sandbox serves them, into DuckDB with
    read_json."""
    account = world.accounts[0]
    rows = server._insight_rows(account, {"level": ["ad"], "time_increment": ["1"], "time_range": [json.dumps(
        {"since": account.first_day.isoformat(), "until": account.today().isoformat()})],
        "fields": [",".join(INSIGHT_FIELDS)]})
    path = root / "insights.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    started, cpu = time.perf_counter(), time.process_time()
    with duckdb.connect(str(root / "bare.duckdb")) as con:
        con.execute("CREATE TABLE insights AS SELECT * FROM read_json(?, format = 'newline_delimited')", [str(path)])
    return time.perf_counter() - started, time.process_time() - cpu, len(rows)


def _child_sync(root: Path, url: str, piece_rows: int, memory_limit: str) -> None:
    """The sync of the benchmark's connection, in this (child) process; its peak RSS written to `PEAK_FILE`.

    The peak is read from /proc (VmHWM, this process's own memory since exec), not from the parent's
    `wait4`: Linux carries a parent's RSS at fork into the child's `ru_maxrss`, so that figure would be the
    parent's (which holds the sandbox's world) whenever it is the larger."""
    registry = ConnectionRegistry(root / "connections.sqlite")
    with Keyring.open(root / "keyring.sqlite", load_master_key(None, root / "master.key", True)) as cipher:
        sync(registry, cipher, registry.get(CONNECTION), GraphEndpoint(url), warehouse_path=root / "warehouse.duckdb",
             dlt_dir=root / "dlt", work_dir=root / "work", now=lambda: NOW,
             options=dataclasses.replace(SANDBOX_OPTIONS, piece_rows=piece_rows), memory_limit=memory_limit)
    peak_kb = next(int(line.split()[1]) for line in Path("/proc/self/status").read_text().splitlines()
                   if line.startswith("VmHWM:"))
    (root / PEAK_FILE).write_text(str(peak_kb))


@dataclass
class Measured:
    """One full sync run in a fresh process: wall and CPU seconds (the sync process's own), peak RSS (MB) and
    the requests the server answered."""

    wall_s: float
    cpu_s: float
    peak_mb: int
    requests: int


def _measured_sync(world: World, server: FacebookServer, root: Path, piece_rows: int,
                   load_memory_limit: str = LOAD_MEMORY_LIMIT) -> Measured:
    root.mkdir(parents=True)
    registry = ConnectionRegistry(root / "connections.sqlite")
    with Keyring.open(root / "keyring.sqlite", load_master_key(None, root / "master.key", True)) as cipher:
        seed_connections(registry, cipher, world, (("ws_bench", 0),))
    server.reset_counts()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    child = subprocess.Popen([sys.executable, "-m", "bench.facebook_ads", "--child", str(root), server.url,
                              str(piece_rows), load_memory_limit],
                             env={**os.environ, "RUNTIME__DLTHUB_TELEMETRY": "false"})
    if child.wait():
        raise RuntimeError(f"the sync process failed (status {child.returncode})")
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return Measured(wall, cpu, int((root / PEAK_FILE).read_text()) // 1024, sum(server.http_requests.values()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.facebook_ads", description=__doc__.splitlines()[0])
    parser.add_argument("--ads", type=int, default=1000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--naive-ads", type=int, default=50, help="ads asked day by day for the baseline")
    parser.add_argument("--big-ads", type=int, default=10_000)
    parser.add_argument("--big-days", type=int, default=7)
    parser.add_argument("--load-memory-limit", default=LOAD_MEMORY_LIMIT,
                        help="DuckDB's memory cap while loading, for the memory pair")
    parser.add_argument("--piece-rows", type=int, default=SANDBOX_OPTIONS.piece_rows,
                        help="insight rows per dlt load of a big sync")
    parser.add_argument("--child", nargs=4, metavar=("ROOT", "URL", "PIECE_ROWS", "CAP"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child_sync(Path(args.child[0]), args.child[1], int(args.child[2]), args.child[3])
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        world = _world(args.ads, args.days)
        with FacebookServer(world) as server:
            small = _measured_sync(world, server, root / "sync", args.piece_rows)
            async_requests = _insight_requests(server)
            naive_s, naive_requests = _naive(server, world, args.naive_ads, args.days)
        runs = {}
        for count in (args.ads, args.big_ads):  # the same days, ten times the ads
            sized = _world(count, args.big_days)
            with FacebookServer(sized) as server:
                runs[count] = (len(sized.accounts[0].of_kind("ad")),
                               _measured_sync(sized, server, root / f"sync-{count}", args.piece_rows,
                                              args.load_memory_limit))
                if count == args.big_ads:
                    bare_s, bare_cpu, rows = _bare_insert(server, sized, root)
    ads = len(world.accounts[0].of_kind("ad"))
    naive_full = naive_requests * ads / args.naive_ads  # one request per ad and day, whatever the sample
    (small_ads, pair_small), (big_ads, big) = runs.values()
    print(f"Meta ads sync against the sandbox; load average {os.getloadavg()[0]:.1f}")
    print(f"insights requests for the full sync of {ads} ads x {args.days} days (first sync: 37 months)")
    print(f"  async report runs + paging (the source): {async_requests} (whole sync: {small.requests} requests, "
          f"{small.wall_s:.1f} s)")
    print(f"  naive per-ad, per-day loop: {naive_full:.0f} (timed on {args.naive_ads} ads: {naive_s:.1f} s)")
    print(f"  ratio naive / async: {naive_full / async_requests:.0f}x")
    print(f"sync of one account, {big_ads} ads x {args.big_days} days = {rows} insight rows (structure, insights + "
          f"action rows, leads; encryption and dlt loads): {big.wall_s:.1f} s wall, {big.cpu_s:.1f} s CPU, "
          f"{big.requests} requests")
    print(f"DuckDB bare insert of the same {rows} insight rows from the sandbox's JSON: {bare_s:.2f} s wall, "
          f"{bare_cpu:.2f} s CPU (sync / bare: {big.wall_s / bare_s:.0f}x wall, {big.cpu_s / bare_cpu:.0f}x CPU)")
    print(f"peak RSS of the sync process over {args.big_days} days (DuckDB load cap {args.load_memory_limit}, pieces of "
          f"{args.piece_rows} rows): {small_ads} ads "
          f"{pair_small.peak_mb} MB | {big_ads} ads {big.peak_mb} MB | ratio {big.peak_mb / pair_small.peak_mb:.2f} "
          f"(sync of {ads} ads x {args.days} days: {small.peak_mb} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
