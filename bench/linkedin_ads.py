"""LinkedIn Ads requests per account-month: the source against a naive per-campaign, per-day loop, measured in
one run against the sandbox (counts come from the sandbox server itself).

    python -m bench.linkedin_ads [--campaigns 10] [--creatives 3] [--days 90]

The source reads each account's entities (four search finders, 1,000 per page) and its daily analytics with
two adAnalytics requests per account (CAMPAIGN and CREATIVE pivots) covering as many days as the 15,000-element
cap allows; an hourly run after it re-reads only the lookback window, with the same number of requests. The
naive loop asks adAnalytics for one campaign (or creative) and one day at a time, as a client written without
Rest.li's List facets and date ranges would, after listing the same entities; it runs over one account-month.
"""

from __future__ import annotations

import argparse
import datetime as dt
import tempfile
import time
from pathlib import Path

from pipelines.connections.report import SyncReport
from pipelines.linkedin_ads import settings
from pipelines.linkedin_ads.client import LinkedInClient, restli_date, restli_urns
from pipelines.linkedin_ads.source import AdsSync, linkedin_ads_source
from pipelines.sandbox.linkedin_ads import LinkedInAdsServer, build_data
from pipelines.warehouse import warehouse_pipeline

NOW = dt.datetime(2026, 12, 2, 12, 0, tzinfo=dt.timezone.utc)


def _naive(server: LinkedInAdsServer, token: str, account_id: int, days: list[dt.date]) -> int:
    """Requests of the per-object, per-day loop over one account (entities listed as the source does)."""
    report = SyncReport("naive", "linkedin_ads")
    client = LinkedInClient(token, report, f"{server.url}/rest")
    campaigns = list(client.search(f"adAccounts/{account_id}/adCampaigns"))
    creatives = list(client.search(f"adAccounts/{account_id}/creatives", "criteria"))
    objects = [("CAMPAIGN", "campaigns", "sponsoredCampaign", c["id"]) for c in campaigns]
    objects += [("CREATIVE", "creatives", "sponsoredCreative", int(c["id"].rsplit(":", 1)[1])) for c in creatives]
    for pivot, facet, kind, object_id in objects:
        for day in days:
            response = client.rest.get(
                f"adAnalytics?q=analytics&pivot={pivot}&timeGranularity=DAILY"
                f"&dateRange=(start:{restli_date(day)},end:{restli_date(day)})&{facet}={restli_urns(kind, [object_id])}"
                f"&fields=dateRange,pivotValues,{','.join(settings.METRIC_FIELDS)}")
            response.raise_for_status()
    return report.http_requests


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.linkedin_ads", description=__doc__.splitlines()[0])
    parser.add_argument("--campaigns", type=int, default=10, help="campaigns per account (in two groups)")
    parser.add_argument("--creatives", type=int, default=3, help="creatives per campaign")
    parser.add_argument("--days", type=int, default=90, help="days of history per account")
    args = parser.parse_args(argv)
    data = build_data(3, history_days=args.days, groups=2, campaigns=max(1, args.campaigns // 2),
                      creatives=args.creatives, now=lambda: NOW, member_plan=((0,),))
    member = data.members[0]
    account = data.accounts[member.account_ids[0]]
    months = args.days / 30
    with tempfile.TemporaryDirectory() as tmp, LinkedInAdsServer(data) as server:
        root = Path(tmp)
        pipeline = warehouse_pipeline("linkedin_ads", settings.DATASET_NAME, root / "warehouse.duckdb", root / "dlt")
        sync = AdsSync("bench", "ws_bench", member.token, SyncReport("bench", "linkedin_ads"), f"{server.url}/rest",
                       now=lambda: NOW)
        started = time.perf_counter()
        pipeline.run(linkedin_ads_source(sync)).raise_on_failed_jobs()
        full_s = time.perf_counter() - started
        rows = sync.report.stream(settings.CREATIVE_ANALYTICS).inserted
        hourly = AdsSync("bench", "ws_bench", member.token, SyncReport("bench", "linkedin_ads"), f"{server.url}/rest",
                         state=sync.state, now=lambda: NOW + dt.timedelta(hours=1))
        pipeline.run(linkedin_ads_source(hourly)).raise_on_failed_jobs()
        month = [NOW.date() - dt.timedelta(days=30 - i) for i in range(30)]
        started = time.perf_counter()
        naive = _naive(server, member.token, account.id, month)
        naive_s = time.perf_counter() - started
    source_per_month = sync.report.http_requests / months
    print(f"one account: {len(account.campaigns)} campaigns, {len(account.creatives)} creatives, {args.days} days "
          f"({months:.1f} account-months), {rows} creative-day rows")
    print(f"{'':34} {'requests':>9} {'per account-month':>18} {'seconds':>8}")
    print(f"{'source, first sync (full history)':34} {sync.report.http_requests:>9} {source_per_month:>18.1f} "
          f"{full_s:>8.2f}")
    print(f"{'source, next hourly run (window)':34} {hourly.report.http_requests:>9} {'':>18} {'':>8}")
    print(f"{'naive per-object, per-day loop':34} {naive:>9} {naive:>18.1f} {naive_s:>8.2f}  (one account-month)")
    print(f"requests per account-month, naive / source: {naive / source_per_month:.0f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
