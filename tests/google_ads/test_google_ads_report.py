"""The four Google Ads staging models of the shared ad report, built by the project's SQL model builder over a
real sync: exactly the shared columns and types, spend in major units, totals equal to the raw tables and to
the sandbox's own numbers."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import duckdb
import pytest

from assets.sql_models import build, build_order, failing_rows_sql, load_models
from pipelines import ad_reporting
from pipelines.catalog import DECLARED_TABLES
from pipelines.google_ads.settings import PLATFORM_REPORT
from tests.google_ads.conftest import HISTORY_DAYS, NOW, AdsHarness
from tests.google_ads.expected import ad_days

MODELS = load_models(set(DECLARED_TABLES))


@pytest.fixture
def built(ads: AdsHarness) -> AdsHarness:
    ads.sync()
    with duckdb.connect(str(ads.warehouse)) as con:
        ours = {ad_reporting.staging_model("google_ads", grain) for grain in ad_reporting.GRAINS}
        for model in (m for m in build_order(MODELS) if m.table in ours):
            build(con, model, sources=DECLARED_TABLES)
            for test in model.tests:
                assert con.execute(failing_rows_sql(model, test)).fetchone()[0] == 0, test
    return ads


@pytest.mark.parametrize("grain", ad_reporting.GRAINS)
def test_each_grain_has_exactly_the_shared_columns(built: AdsHarness, grain: str) -> None:
    described = built.query(f"DESCRIBE {ad_reporting.staging_model('google_ads', grain)}")
    assert [(r[0], r[1]) for r in described] == [(c, ad_reporting.COLUMN_TYPES[c]) for c in ad_reporting.columns(grain)]


def test_every_grain_adds_up_to_the_sandboxs_numbers(built: AdsHarness) -> None:
    expected = ad_days(built.world, NOW, HISTORY_DAYS)
    by_account: dict[str, list] = {}
    for (cid, _, _), (impressions, clicks, cost_micros, conversions) in expected.items():
        total = by_account.setdefault(cid, [0, 0, 0, 0.0])
        total[0] += impressions
        total[1] += clicks
        total[2] += cost_micros
        total[3] += conversions
    for grain in ad_reporting.GRAINS:
        rows = built.query(f"SELECT account_id, currency, sum(impressions), sum(clicks), sum(spend), sum(conversions) "
                           f"FROM {ad_reporting.staging_model('google_ads', grain)} GROUP BY 1, 2 ORDER BY 1")
        assert [(r[0], r[1], r[2], r[3], r[4], pytest.approx(r[5])) for r in rows] == [
            (cid, currency, t[0], t[1], Decimal(t[2]) / Decimal(1_000_000), pytest.approx(t[3]))
            for cid, currency, t in ((c, cur, by_account[c]) for c, cur in
                                     (("1000000001", "USD"), ("1000000002", "EUR"), ("1000000003", "JPY")))]
    # Yen have no minor unit: every JPY spend is whole.
    assert built.query("SELECT count(*) FROM staging.stg_google_ads__ad_report "
                       "WHERE currency = 'JPY' AND spend <> round(spend)") == [(0,)]


def test_report_equals_the_platform_raw_totals(built: AdsHarness) -> None:
    raw = {(r[0], r[1], r[2]): r[3:] for r in built.query(PLATFORM_REPORT.raw_daily_totals["ad"])}
    for grain in ad_reporting.GRAINS:
        report = {(r[0], r[1], r[2]): r[3:] for r in built.query(
            f"SELECT date_day, workspace_id, account_id, sum(impressions), sum(clicks), sum(spend) "
            f"FROM {ad_reporting.staging_model('google_ads', grain)} GROUP BY ALL")}
        assert report == raw
    assert min(k[0] for k in raw) == dt.date(2026, 12, 2) - dt.timedelta(days=HISTORY_DAYS)


def test_names_come_from_the_entities(built: AdsHarness) -> None:
    assert built.query("SELECT DISTINCT account_name, campaign_name, ad_group_name, ad_name "
                       "FROM staging.stg_google_ads__ad_report WHERE ad_id = '10101001'") == [
        ("Sandbox Outdoor US", "Sandbox Outdoor US campaign 1", "campaign 1 ad group 1", "ad 1.1.1")]
