"""The LinkedIn Ads source against the sandbox, loaded into a real DuckDB warehouse: an exact mirror after the
first and an incremental sync (lookback window merged, older days untouched, entities updated and removed
ones kept), throttling, server errors, an expired token, the Rest.li date parameters on the wire, and a
disconnect erasing the connection's rows."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import duckdb
import pytest

from pipelines.connections.disconnect import disconnect
from pipelines.linkedin_ads import settings
from pipelines.linkedin_ads.source import linkedin_ads_source
from pipelines.linkedin_ads.sync import new_sync
from pipelines.privacy.audit import AuditLog
from pipelines.privacy.dsr import process_pending
from pipelines.privacy.requests import Inbox
from pipelines.sandbox.linkedin_ads import restli
from pipelines.sandbox.mail import FaultKind
from pipelines.warehouse import warehouse_pipeline
from tests.linkedin_ads.conftest import EU, JP, US, WS1, WS2, AdsPlatform, normalised

RAW = settings.DATASET_NAME


def counts(ads: AdsPlatform, connection_id: str) -> dict[str, int]:
    return {table: ads.query(f"SELECT count(*) FROM {RAW}.{table} WHERE connection_id = ?", [connection_id])[0][0]
            for table in settings.TABLES}


def test_first_sync_mirrors_every_table_exactly(ads: AdsPlatform) -> None:
    report = ads.sync(WS1)
    expected = ads.expected_creative_days((US, EU))
    assert ads.held_creative_days(WS1) == normalised(expected)
    assert counts(ads, WS1) == {
        settings.ACCOUNTS: 2, settings.CAMPAIGN_GROUPS: 4, settings.CAMPAIGNS: 8, settings.CREATIVES: 16,
        settings.CAMPAIGN_ANALYTICS: len({(ads.data.creative(c).campaign_id, d) for c, d in expected}),
        settings.CREATIVE_ANALYTICS: len(expected),
    }
    # Campaign figures are LinkedIn's own CAMPAIGN pivot: equal to their creatives' sums, day by day.
    mismatched = ads.query(f"""
        SELECT c.campaign_id, c.date_day FROM {RAW}.linkedin_ads_campaign_analytics c
        JOIN (SELECT campaign_id, date_day, sum(impressions) AS i, sum(cost_in_local_currency) AS s
              FROM {RAW}.linkedin_ads_creative_analytics GROUP BY ALL) k USING (campaign_id, date_day)
        WHERE c.impressions <> k.i OR c.cost_in_local_currency <> k.s""")
    assert mismatched == []
    accounts = ads.query(f"SELECT account_id, currency, workspace_id FROM {RAW}.linkedin_ads_accounts ORDER BY 1")
    assert accounts == [(US, "USD", "ws_0001"), (EU, "EUR", "ws_0001")]
    # Account-local days: Los Angeles is on Dec 1 (19:00), Berlin on Dec 2 (04:00).
    last_days = dict(ads.query(f"SELECT account_id, max(date_day) FROM {RAW}.linkedin_ads_creative_analytics GROUP BY 1"))
    assert last_days == {US: dt.date(2026, 12, 1), EU: dt.date(2026, 12, 2)}
    # 1 account search + 3 entity searches per account + 2 analytics (campaign, creative) per account.
    assert report.http_requests == 11 and ads.server.http_requests["adAnalytics.analytics"] == 4
    assert report.stream(settings.CREATIVE_ANALYTICS).inserted == len(expected)
    assert report.retries == 0
    assert ads.registry.get(WS1).sync_state == {"analytics_end": {str(US): "2026-12-03", str(EU): "2026-12-03"}}


def test_incremental_sync_merges_the_lookback_window_and_leaves_older_days(ads: AdsPlatform) -> None:
    ads.sync(WS1)
    held = ads.held_creative_days(WS1)
    ads.clock.advance(days=1)
    inside, outside = dt.date(2026, 11, 20), dt.date(2026, 10, 25)  # 12 and 38 days before the new today
    gone = dt.date(2026, 11, 25)
    creative = next(c for c in ads.data.accounts[US].creatives
                    if (c.id, inside) in held and (c.id, outside) in held and (c.id, gone) in held)
    ads.data.restate(creative.id, inside, conversions=held[(creative.id, inside)][3] + 5)
    ads.data.withdraw(creative.id, gone)  # credited back entirely: LinkedIn leaves the day out
    ads.data.restate(creative.id, outside, conversions=held[(creative.id, outside)][3] + 7)
    renamed, removed = ads.data.accounts[EU].campaigns[1].id, ads.data.accounts[EU].campaigns[2].id
    ads.data.rename_campaign(renamed, "Spring launch")
    ads.data.remove_campaign(removed)

    report = ads.sync(WS1)

    now_held = ads.held_creative_days(WS1)
    assert now_held[(creative.id, inside)][3] == held[(creative.id, inside)][3] + 5
    assert now_held[(creative.id, outside)] == held[(creative.id, outside)]  # outside the window: not re-read
    expected = normalised(ads.expected_creative_days((US, EU)))
    expected[(creative.id, outside)] = held[(creative.id, outside)]
    assert now_held == expected
    assert (creative.id, gone) not in now_held and report.stream(settings.CREATIVE_ANALYTICS).deleted == 1
    sums: dict[tuple[int, dt.date], int] = {}  # the campaign pivot agrees with the creatives, the withdrawn day too
    for (creative_id, day), figures in now_held.items():
        key = (ads.data.creative(creative_id).campaign_id, day)
        sums[key] = sums.get(key, 0) + figures[0]
    assert {(c, d): i for c, d, i in ads.query(f"SELECT campaign_id, date_day, impressions FROM {RAW}."
                                               "linkedin_ads_campaign_analytics")} == sums
    campaign_day = ads.query(f"SELECT external_website_conversions FROM {RAW}.linkedin_ads_campaign_analytics "
                             "WHERE campaign_id = ? AND date_day = ?", [creative.campaign_id, inside])[0][0]
    assert campaign_day == sum(v[3] for (c, d), v in now_held.items()
                               if d == inside and ads.data.creative(c).campaign_id == creative.campaign_id)
    campaigns = dict(ads.query(f"SELECT campaign_id, name || '/' || status FROM {RAW}.linkedin_ads_campaigns"))
    assert campaigns[renamed] == "Spring launch/ACTIVE" and campaigns[removed].endswith("/REMOVED")
    assert counts(ads, WS1)[settings.CAMPAIGNS] == 8  # the removed campaign is kept, with its status
    # The window is 30 days before the last end (Dec 3) up to the day after the new today (Dec 4).
    windows = {q.split("dateRange=")[1].split("&")[0] for e, q in ads.server.queries[-4:] if e == "adAnalytics.analytics"}
    assert windows == {"(start:(year:2026,month:11,day:3),end:(year:2026,month:12,day:4))"}
    analytics = report.stream(settings.CREATIVE_ANALYTICS)
    window_rows = sum(1 for (_, d) in now_held if d >= dt.date(2026, 11, 3))
    assert analytics.inserted + analytics.updated == window_rows
    assert analytics.inserted == sum(1 for k in now_held if k not in held)
    assert report.stream(settings.CAMPAIGNS).updated == 8 and report.stream(settings.CAMPAIGNS).inserted == 0


def test_throttling_is_waited_out_and_counted(ads: AdsPlatform) -> None:
    ads.server.faults.inject(FaultKind.RATE_LIMIT, times=2, endpoint="adAnalytics.analytics", retry_after=1)
    report = ads.sync(WS2)
    assert (report.retries, report.waits, report.wait_seconds) == (2, 2, 2.0)
    assert report.http_requests == 1 + 3 + 2 + 2
    assert ads.held_creative_days(WS2) == normalised(ads.expected_creative_days((JP,)))
    costs = ads.query(f"SELECT DISTINCT cost_in_local_currency % 1 FROM {RAW}.linkedin_ads_creative_analytics")
    assert costs == [(Decimal(0),)]  # yen stay whole


def test_server_errors_and_cut_connections_are_retried(ads: AdsPlatform) -> None:
    ads.server.faults.inject(FaultKind.SERVER_ERROR, times=2, endpoint="adCampaigns.search", status=503)
    ads.server.faults.inject(FaultKind.DROP, endpoint="creatives.criteria")
    report = ads.sync(WS2)
    assert (report.retries, report.waits) == (3, 0)
    assert counts(ads, WS2)[settings.CREATIVES] == 8
    assert ads.held_creative_days(WS2) == normalised(ads.expected_creative_days((JP,)))


def test_persistent_server_errors_fail_the_sync_and_mark_it_erroring(ads: AdsPlatform) -> None:
    ads.server.faults.inject(FaultKind.SERVER_ERROR, times=10, endpoint="adAnalytics.analytics", status=500)
    with pytest.raises(Exception):
        ads.sync(WS2)
    connection = ads.registry.get(WS2)
    assert (connection.status, connection.status_detail, connection.sync_state) == ("erroring", "LinkedInError", {})


def test_an_expired_token_needs_reauthorisation_and_leaves_the_other_connection(ads: AdsPlatform) -> None:
    ads.sync(WS1)
    before = counts(ads, WS1)
    ads.server.expire_token(ads.data.members[0].token)
    ads.clock.advance(days=1)
    with pytest.raises(Exception) as raised:
        ads.sync(WS1)
    assert ads.data.members[0].token not in str(raised.value)
    connection = ads.registry.get(WS1)
    assert (connection.status, connection.status_detail) == ("needs_reauth", "LinkedIn answered 401 EXPIRED_ACCESS_TOKEN")
    assert connection.sync_state == {"analytics_end": {str(US): "2026-12-03", str(EU): "2026-12-03"}}
    assert counts(ads, WS1) == before
    ads.sync(WS2)
    assert ads.registry.get(WS2).status == "active"


def test_restli_date_ranges_are_sized_to_the_analytics_cap(ads: AdsPlatform) -> None:
    """With a cap of 60 elements, 4 campaigns are read 15 days per request and 8 creatives 7 days; a response
    that reaches the cap is read again in halves; the mirror is exact either way."""
    ads.server.max_analytics_elements = 60
    registry = ads.registry
    with ads.keyring() as cipher:
        sync = new_sync(registry, cipher, registry.get(WS1), f"{ads.server.url}/rest", ads.warehouse, now=ads.clock,
                        max_elements=60)
        warehouse_pipeline("linkedin_ads", RAW, ads.warehouse, ads.root / "dlt").run(
            linkedin_ads_source(sync)).raise_on_failed_jobs()
    assert ads.held_creative_days(WS1) == normalised(ads.expected_creative_days((US, EU)))
    ranges = [q.split("dateRange=")[1].split("&")[0] for e, q in ads.server.queries if e == "adAnalytics.analytics"]
    assert ranges[0] == "(start:(year:2025,month:12,day:2),end:(year:2025,month:12,day:16))"
    spans = {(end - start).days + 1 for start, end in map(restli.date_range, ranges)}
    assert max(spans) == 15 and 7 in spans


def test_disconnect_erases_the_connections_rows_through_the_privacy_engine(ads: AdsPlatform) -> None:
    ads.sync(WS1)
    ads.sync(WS2)
    before = counts(ads, WS1)
    others = counts(ads, WS2)
    inbox = Inbox(ads.root / "privacy" / "requests.sqlite")
    request_id = disconnect(ads.registry, inbox, WS1, requested_by="test")
    with ads.keyring() as cipher, duckdb.connect(str(ads.warehouse)) as con:
        report = process_pending(con, cipher, inbox, AuditLog.of(ads.root / "privacy" / "audit.jsonl", cipher),
                                 exports_dir=ads.root / "exports", landing_urls={})
    assert report.rows_by_table == {f"{RAW}.{table}": n for table, n in before.items()}
    assert inbox.get(request_id)["status"] == "completed" and ads.registry.get(WS1).status == "revoked"
    assert counts(ads, WS1) == dict.fromkeys(settings.TABLES, 0) and counts(ads, WS2) == others
