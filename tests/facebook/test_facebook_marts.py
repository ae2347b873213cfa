"""The Meta staging reports and marts over real syncs: every figure equals the sandbox's Ads Manager, per ad and
day in the account's time zone, and leads per form and day; nothing personal in the marts."""

from __future__ import annotations

from collections import Counter
from zoneinfo import ZoneInfo

import duckdb
import pytest

from assets.ad_reporting import mismatched_account_days, mismatched_lead_days
from assets.analytics import MODELS, PERSONAL_COLUMNS
from assets.sql_models import build, build_order, readable_personal_data
from pipelines.catalog import AD_PLATFORMS, DECLARED_TABLES
from pipelines.facebook.settings import REPORT
from tests.facebook.conftest import TOKYO, WEST, AdsPlatform, ads  # noqa: F401 - ads: the fixture

SHAPE = {  # the shared ad-report shape (ADS_CONTRACT.md), in order
    "account": [],
    "campaign": ["campaign_id", "campaign_name"],
    "ad_group": ["campaign_id", "campaign_name", "ad_group_id", "ad_group_name"],
    "ad": ["campaign_id", "campaign_name", "ad_group_id", "ad_group_name", "ad_id", "ad_name"],
}

PERFORMANCE = "analytics.ad_performance_daily"


@pytest.fixture
def built(ads: AdsPlatform) -> AdsPlatform:
    for connection_id in (WEST, TOKYO):
        ads.sync(connection_id)
    with duckdb.connect(str(ads.warehouse)) as con:
        for model in build_order(MODELS):
            build(con, model, sources=DECLARED_TABLES)
    return ads


def test_reports_have_the_shared_shape_and_equal_ads_manager(built: AdsPlatform) -> None:
    for grain, middle in SHAPE.items():
        columns = built.query("SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = "
                              "'staging' AND table_name = ? ORDER BY ordinal_position", [f"stg_facebook_ads__{grain}_report"])
        assert [c for c, _ in columns] == ["date_day", "platform", "workspace_id", "connection_id", "account_id",
                                           "account_name", *middle, "currency", "clicks", "impressions", "spend",
                                           "conversions", "conversions_value"]
        assert dict(columns)["spend"] == "DECIMAL(38,6)" and dict(columns)["date_day"] == "DATE"
    for connection_id in (WEST, TOKYO):
        account = built.account(connection_id)
        expected = {(ad, day): (f["impressions"], f["clicks"], f["spend"], float(f["conversions"]),
                                float(f["conversions_value"])) for (ad, day), f in account.ads_manager().items()}
        rows = built.query("SELECT ad_id, date_day, impressions, clicks, spend, conversions, conversions_value, currency "
                           "FROM staging.stg_facebook_ads__ad_report WHERE connection_id = ?", [connection_id])
        assert {(r[0], r[1]): r[2:7] for r in rows} == expected
        assert {r[7] for r in rows} == {account.currency}
        per_campaign: Counter = Counter()
        for (ad, day), figures in expected.items():
            per_campaign[(account.objects[ad].fields["campaign_id"], day)] += figures[2]
        campaign_rows = built.query("SELECT campaign_id, date_day, spend FROM staging.stg_facebook_ads__campaign_report "
                                    "WHERE connection_id = ?", [connection_id])
        assert {(r[0], r[1]): r[2] for r in campaign_rows} == dict(per_campaign)
        total = built.query("SELECT sum(spend), count(*) FROM staging.stg_facebook_ads__account_report "
                            "WHERE connection_id = ?", [connection_id])[0]
        assert total == (sum(f[2] for f in expected.values()), len({d for _, d in expected}))


def test_raw_daily_totals_equal_the_account_report(built: AdsPlatform) -> None:
    assert REPORT in AD_PLATFORMS and REPORT.platform == "facebook_ads"
    raw = built.query(f"SELECT * FROM ({REPORT.raw_daily_totals['account']}) ORDER BY ALL")
    report = built.query("SELECT date_day, workspace_id, account_id, impressions, clicks, spend "
                         "FROM staging.stg_facebook_ads__account_report ORDER BY ALL")
    assert raw == report and len(raw) == sum(len({d for _, d in built.account(c).insights}) for c in (WEST, TOKYO))


def test_leads_per_ad_and_form_and_day_in_the_accounts_time_zone(built: AdsPlatform) -> None:
    for connection_id in (WEST, TOKYO):
        account = built.account(connection_id)
        zone = ZoneInfo(account.timezone_name)
        by_form: Counter = Counter((lead.form_id, lead.created.astimezone(zone).date()) for lead in account.leads.values())
        by_ad: Counter = Counter((lead.ad_id, lead.created.astimezone(zone).date()) for lead in account.leads.values())
        rows = built.query("SELECT form_id, date_day, leads FROM analytics.leads_daily WHERE connection_id = ?",
                           [connection_id])
        assert {(r[0], r[1]): r[2] for r in rows} == dict(by_form)
        performance = built.query("SELECT ad_id, date_day, leads FROM analytics.ad_performance_daily "
                                  "WHERE connection_id = ? AND leads > 0", [connection_id])
        assert {(r[0], r[1]): r[2] for r in performance} == dict(by_ad)
        assert built.query("SELECT count(*) FROM analytics.ad_performance_daily WHERE connection_id = ?",
                           [connection_id]) == [(len(account.insights),)]
    with duckdb.connect(str(built.warehouse), read_only=True) as con:
        for name in ("analytics.ad_performance_daily", "analytics.leads_daily"):
            assert readable_personal_data(con, MODELS[name], PERSONAL_COLUMNS) == {}


def test_leads_are_contacts_keyed_like_every_other_source(built: AdsPlatform) -> None:
    per_connection = built.query("SELECT connection_id, count(*), count(email_key), count(phone_key) FROM "
                                 "staging.stg_contacts WHERE source = 'meta_leads' GROUP BY 1 ORDER BY 1")
    assert per_connection == [(WEST, 8, 8, 8), (TOKYO, 8, 8, 8)]
    leads = [lead for c in (WEST, TOKYO) for lead in built.account(c).leads.values()]
    with built.keyring() as cipher:
        expected = cipher.blind_index("ws_0001", [lead.answers["email"] for lead in leads],
                                      kind="user.contact.email").to_pylist()
    keys = built.query("SELECT contact_key FROM analytics.contacts WHERE workspace_id = 'ws_0001' AND sources = 'meta_leads'")
    assert sorted(k for (k,) in keys) == sorted(expected)
    assert built.query("SELECT sum(contacts) FROM analytics.contact_lists_daily WHERE provider = 'meta_leads'") == [(16,)]


def test_leads_on_a_day_without_delivery_keep_their_row(ads: AdsPlatform) -> None:
    # Meta reports no insights row for an ad and day without delivery; its leads must not vanish in the join.
    account = ads.account(WEST)
    zone = ZoneInfo(account.timezone_name)
    lead = min(account.leads.values(), key=lambda item: item.id)
    day = lead.created.astimezone(zone).date()
    assert account.insights.pop((lead.ad_id, day), None) is not None
    on_that_day = sum(1 for other in account.leads.values()
                      if (other.ad_id, other.created.astimezone(zone).date()) == (lead.ad_id, day))
    ads.sync(WEST)
    ads.sync(TOKYO)
    with duckdb.connect(str(ads.warehouse)) as con:
        for model in build_order(MODELS):
            build(con, model, sources=DECLARED_TABLES)
    assert ads.query("SELECT sum(leads) FROM analytics.ad_performance_daily WHERE connection_id = ?",
                     [WEST]) == [(len(account.leads),)]
    row = ads.query("SELECT impressions, clicks, spend, leads, ad_name IS NOT NULL, campaign_id IS NOT NULL, currency "
                    "FROM analytics.ad_performance_daily WHERE connection_id = ? AND ad_id = ? AND date_day = ?",
                    [WEST, lead.ad_id, day])
    assert row == [(0, 0, 0, on_that_day, True, True, account.currency)]
    assert ads.query("SELECT count(*) FROM analytics.ad_performance_daily WHERE connection_id = ?",
                     [WEST]) == [(len(account.insights) + 1,)]
    with duckdb.connect(str(ads.warehouse)) as con:
        assert [mismatched_lead_days(con, model) for model in (PERFORMANCE, "analytics.leads_daily")] == [0, 0]
        assert mismatched_account_days(con, "ad", (REPORT,), PERFORMANCE) == 0
        # The checks catch the join that dropped them, and a delivery figure changed.
        con.execute(f"DELETE FROM {PERFORMANCE} WHERE connection_id = ? AND ad_id = ? AND date_day = ?",
                    [WEST, lead.ad_id, day])
        assert mismatched_lead_days(con, PERFORMANCE) == 1
        con.execute(f"UPDATE {PERFORMANCE} SET clicks = clicks + 1 WHERE connection_id = ? AND date_day = "
                    f"(SELECT max(date_day) FROM {PERFORMANCE} WHERE connection_id = ?)", [TOKYO, TOKYO])
        assert mismatched_account_days(con, "ad", (REPORT,), PERFORMANCE) == 1
