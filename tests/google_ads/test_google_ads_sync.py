"""The Google Ads source against the gRPC sandbox with the real google-ads client, loaded by dlt into DuckDB:
exact mirror after a full and an incremental sync, the conversion window, the manager's three clients in three
time zones, removed entities."""

from __future__ import annotations

import datetime as dt

import pytest

from pipelines.google_ads import SyncOptions
from tests.google_ads.conftest import HISTORY_DAYS, NOW, AdsHarness
from tests.google_ads.expected import ad_days, local_yesterday, rollup

AD_DAILY = ("SELECT customer_id, ad_id, date, impressions, clicks, cost_micros, conversions "
            "FROM raw_google_ads.google_ads_ad_daily")


def _ad_rows(ads: AdsHarness) -> dict[tuple, tuple]:
    return {(r[0], r[1], r[2]): r[3:] for r in ads.query(AD_DAILY)}


def test_full_sync_mirrors_every_table(ads: AdsHarness) -> None:
    run = ads.sync()
    assert run.stopped is None
    assert {t: ads.count(t) for t in ("google_ads_customers", "google_ads_campaigns", "google_ads_ad_groups",
                                      "google_ads_ads", "google_ads_keywords")} == {
        "google_ads_customers": 4, "google_ads_campaigns": 9, "google_ads_ad_groups": 18, "google_ads_ads": 36,
        "google_ads_keywords": 54}
    expected = ad_days(ads.world, NOW, HISTORY_DAYS)
    assert _ad_rows(ads) == expected
    for level, table, column in (("campaign", "google_ads_campaign_daily", "campaign_id"),
                                 ("ad_group", "google_ads_ad_group_daily", "ad_group_id")):
        stored = {(r[0], r[1], r[2]): r[3:] for r in ads.query(
            f"SELECT customer_id, {column}, date, impressions, clicks, cost_micros, conversions "
            f"FROM raw_google_ads.{table}")}
        assert stored == rollup(ads.world, expected, level)
    # Every row carries its workspace and connection; the report counted each row once, as inserted.
    assert ads.query("SELECT DISTINCT workspace_id, connection_id FROM raw_google_ads.google_ads_ad_daily") == [
        ("ws_0001", "ws_0001-google_ads-0")]
    assert run.report.stream("google_ads_ad_daily").inserted == len(expected)
    assert run.report.stream("google_ads_ad_daily").updated == 0
    # 40 days in 14-day slices: 3 SearchStream calls per report and client; one Search page each for the
    # customers (manager) and for campaigns, ad groups, ads and keywords of each client (pages of 10 rows).
    calls = ads.sandbox.calls
    assert calls["SearchStream"] == 3 * 3 * 3 == run.report.http_requests - calls["Search"]
    assert calls["Search:9990001111"] == 1
    assert calls["Search:1000000001"] == 1 + 1 + 2 + 2  # 3 campaigns, 6 ad groups, 12 ads, 18 keywords
    assert run.report.retries == 0


def test_incremental_sync_merges_the_conversion_window_and_leaves_older_days(ads: AdsHarness) -> None:
    ads.sync()
    before = _ad_rows(ads)
    ads.world.attribute_late_conversions()  # the last 21 days change at the source
    ads.sandbox.calls.clear()
    run = ads.sync()
    after = _ad_rows(ads)
    changed_at_source = ad_days(ads.world, NOW, HISTORY_DAYS)
    assert after.keys() == before.keys()
    inside = outside_changed = 0
    for key, values in after.items():
        cid, _, day = key
        if day > local_yesterday(ads.world, cid, NOW) - dt.timedelta(days=14):
            assert values == changed_at_source[key]  # re-read: merged
            inside += 1
        else:
            assert values == before[key]  # outside the window: untouched
            outside_changed += values != changed_at_source[key]
    assert outside_changed > 0  # days 15-21 back did change at the source and were (rightly) not re-read
    assert sum(1 for k in after if after[k] != before[k]) > 0
    counts = run.report.stream("google_ads_ad_daily")
    assert (counts.inserted, counts.updated) == (0, inside)
    # The window is one slice: one SearchStream per report and client.
    assert ads.sandbox.calls["SearchStream"] == 9
    assert run.state["daily"]["google_ads_ad_daily"] == {"1000000001": "2026-12-01", "1000000002": "2026-12-02",
                                                         "1000000003": "2026-12-02"}


def test_a_wider_conversion_window_rereads_more_days(ads: AdsHarness) -> None:
    ads.sync()
    ads.world.attribute_late_conversions()
    ads.sync(window=30)
    assert _ad_rows(ads) == ad_days(ads.world, NOW, HISTORY_DAYS)  # 21 changed days < 30: all merged


def test_conversion_window_is_bounded() -> None:
    assert SyncOptions(conversion_window_days=90).conversion_window_days == 90
    with pytest.raises(ValueError, match="between 1 and 90"):
        SyncOptions(conversion_window_days=91)


def test_a_new_day_is_added_and_the_cursor_moves(ads: AdsHarness) -> None:
    ads.sync()
    ads.clock.now = NOW + dt.timedelta(days=1)
    run = ads.sync()
    assert {r[0]: r[1] for r in ads.query("SELECT customer_id, max(date) FROM raw_google_ads.google_ads_ad_daily "
                                          "GROUP BY 1")} == {
        "1000000001": dt.date(2026, 12, 2), "1000000002": dt.date(2026, 12, 3), "1000000003": dt.date(2026, 12, 3)}
    assert run.report.stream("google_ads_ad_daily").inserted == sum(
        1 for (cid, _, day) in ad_days(ads.world, ads.clock.now, 1))


@pytest.mark.parametrize("now, expected", [
    # One second before midnight in Los Angeles (08:00 UTC): its yesterday is still Nov 30.
    (dt.datetime(2026, 12, 2, 7, 59, 59, tzinfo=dt.timezone.utc),
     {"1000000001": "2026-11-30", "1000000002": "2026-12-01", "1000000003": "2026-12-01"}),
    (dt.datetime(2026, 12, 2, 8, 0, 0, tzinfo=dt.timezone.utc),
     {"1000000001": "2026-12-01", "1000000002": "2026-12-01", "1000000003": "2026-12-01"}),
    # Midnight in Tokyo is 15:00 UTC, in Berlin 23:00 UTC (winter time).
    (dt.datetime(2026, 12, 2, 14, 59, 59, tzinfo=dt.timezone.utc),
     {"1000000001": "2026-12-01", "1000000002": "2026-12-01", "1000000003": "2026-12-01"}),
    (dt.datetime(2026, 12, 2, 15, 0, 0, tzinfo=dt.timezone.utc),
     {"1000000001": "2026-12-01", "1000000002": "2026-12-01", "1000000003": "2026-12-02"}),
    (dt.datetime(2026, 12, 2, 23, 0, 0, tzinfo=dt.timezone.utc),
     {"1000000001": "2026-12-01", "1000000002": "2026-12-02", "1000000003": "2026-12-02"}),
])
def test_each_client_is_read_up_to_yesterday_in_its_own_time_zone(ads: AdsHarness, now: dt.datetime,
                                                                  expected: dict[str, str]) -> None:
    ads.clock.now = now
    ads.sync()
    assert {r[0]: r[1].isoformat() for r in ads.query(
        "SELECT customer_id, max(date) FROM raw_google_ads.google_ads_ad_daily GROUP BY 1")} == expected
    # The sandbox serves today's partial numbers too: none of them was loaded.
    assert _ad_rows(ads) == ad_days(ads.world, now, HISTORY_DAYS)
    # The queries asked exactly for those days (the last slice ends at each client's yesterday).
    last_days = {}
    for call in ads.sandbox.log:
        if call.method == "SearchStream" and "FROM ad_group_ad" in call.query:
            last_days[call.customer_id] = max(last_days.get(call.customer_id, ""), call.query.split("'")[3])
    assert last_days == expected


def test_manager_and_clients_with_their_currencies_and_time_zones(ads: AdsHarness) -> None:
    ads.sync()
    assert ads.query("SELECT customer_id, manager_id, currency_code, time_zone, manager, level, status "
                     "FROM raw_google_ads.google_ads_customers ORDER BY customer_id") == [
        ("1000000001", "9990001111", "USD", "America/Los_Angeles", False, 1, "ENABLED"),
        ("1000000002", "9990001111", "EUR", "Europe/Berlin", False, 1, "ENABLED"),
        ("1000000003", "9990001111", "JPY", "Asia/Tokyo", False, 1, "ENABLED"),
        ("9990001111", "9990001111", "USD", "America/New_York", True, 0, "ENABLED"),
    ]
    # No metrics were asked of the manager (the API refuses them), only of its clients.
    assert not [c for c in ads.sandbox.log if c.method == "SearchStream" and c.customer_id == "9990001111"]
    # Yen are whole: every JPY cost is a multiple of a million micros.
    assert ads.query("SELECT count(*) FROM raw_google_ads.google_ads_ad_daily "
                     "WHERE customer_id = '1000000003' AND cost_micros % 1000000 <> 0") == [(0,)]


def test_removed_entities_are_kept_with_their_status(ads: AdsHarness) -> None:
    ads.sync()
    statuses = dict(ads.query("SELECT status, count(*) FROM raw_google_ads.google_ads_campaigns GROUP BY 1"))
    assert statuses == {"ENABLED": 6, "REMOVED": 3}
    assert ads.query("SELECT count(*) FROM raw_google_ads.google_ads_ads WHERE status = 'REMOVED'") == [(3,)]
    assert ads.query("SELECT count(*) FROM raw_google_ads.google_ads_keywords WHERE status = 'REMOVED'") == [(3,)]

    campaign_id = 1_010_000  # the first campaign of the first client
    before = ads.query("SELECT count(*), sum(clicks) FROM raw_google_ads.google_ads_campaign_daily "
                       "WHERE campaign_id = ?", [campaign_id])
    ads.world.remove_campaign(campaign_id)
    ads.clock.now = NOW + dt.timedelta(days=2)
    run = ads.sync()
    assert ads.query("SELECT status FROM raw_google_ads.google_ads_campaigns WHERE campaign_id = ?",
                     [campaign_id]) == [("REMOVED",)]
    assert run.report.stream("google_ads_campaigns").updated == 1  # only the removed one, named by change_status
    # Its history stays; the days up to its removal (the new yesterday is after it) came in, nothing after.
    after = ads.query("SELECT count(*), max(date) FROM raw_google_ads.google_ads_campaign_daily "
                      "WHERE campaign_id = ?", [campaign_id])
    assert after[0][0] >= before[0][0]
    assert after[0][1] < ads.world.today("1000000001") - dt.timedelta(days=2)
    assert _ad_rows(ads) == {**ad_days(ads.world, NOW, HISTORY_DAYS),
                             **ad_days(ads.world, ads.clock.now, 14)}
