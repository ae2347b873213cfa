"""The cross-platform ad report: every platform's staging models have exactly the contract's columns and types;
the unified marts equal a hand-computed answer on known raw rows; and the generic checks pass on a sandbox sync
and fail when the report loses or changes an account-day."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import dlt
import duckdb
import pytest

from assets.ad_reporting import mismatched_account_days, missing_days
from assets.sql_models import build, build_order, load_models
from pipelines import ad_reporting
from pipelines.catalog import AD_PLATFORMS, DECLARED_TABLES
from pipelines.linkedin_ads import settings
from pipelines.warehouse import warehouse_pipeline
from tests.linkedin_ads.conftest import WS1, WS2, AdsPlatform

MODELS = load_models(set(DECLARED_TABLES))


def _with_upstream(names: list[str]) -> list:
    """The models named and every model they read, in build order."""
    wanted: set[str] = set()

    def add(name: str) -> None:
        if name in MODELS and name not in wanted:
            wanted.add(name)
            for dependency in MODELS[name].depends_on:
                add(dependency)

    for name in names:
        add(name)
    return [m for m in build_order(MODELS) if m.table in wanted]


REPORT_MODELS = _with_upstream([m.table for m in MODELS.values()
                                if m.name.startswith("ad_reporting__") or m.name.endswith("_report") and m.schema == "staging"])


def build_report(warehouse: Path) -> None:
    with duckdb.connect(str(warehouse)) as con:
        for model in REPORT_MODELS:
            build(con, model, sources=DECLARED_TABLES)


@pytest.mark.parametrize("platform", [p.platform for p in AD_PLATFORMS])
def test_staging_models_have_exactly_the_contracts_columns(tmp_path: Path, platform: str) -> None:
    build_report(tmp_path / "empty.duckdb")  # no platform loaded: every model builds empty, typed
    with duckdb.connect(str(tmp_path / "empty.duckdb"), read_only=True) as con:
        for grain in ad_reporting.GRAINS:
            for table in (ad_reporting.staging_model(platform, grain), ad_reporting.unified_model(grain)):
                described = con.execute(f"DESCRIBE {table}").fetchall()
                assert [(c[0], c[1]) for c in described] == [
                    (name, ad_reporting.COLUMN_TYPES[name].replace(" ", "")) for name in ad_reporting.columns(grain)
                ], table


def _load_known_rows(warehouse: Path, root: Path) -> None:
    """Two workspaces' LinkedIn accounts (USD and JPY), one campaign group with two campaigns, three creatives;
    a campaign whose group is not loaded; two days."""
    base = {"synced_at": dt.datetime(2026, 12, 2, tzinfo=dt.timezone.utc)}
    a, b = {"connection_id": "c1", "workspace_id": "ws_a", **base}, {"connection_id": "c2", "workspace_id": "ws_b", **base}
    day1, day2 = dt.date(2026, 11, 30), dt.date(2026, 12, 1)

    def metrics(impressions: int, clicks: int, cost: str, conversions: int, value: str) -> dict:
        return {"impressions": impressions, "clicks": clicks, "landing_page_clicks": clicks,
                "cost_in_local_currency": Decimal(cost), "external_website_conversions": conversions,
                "conversion_value_in_local_currency": Decimal(value)}

    rows = {
        settings.ACCOUNTS: [{**a, "account_id": 1, "name": "US", "currency": "USD"},
                            {**b, "account_id": 2, "name": "JP", "currency": "JPY"}],
        settings.CAMPAIGN_GROUPS: [{**a, "campaign_group_id": 10, "account_id": 1, "name": "Brand"}],
        settings.CAMPAIGNS: [{**a, "campaign_id": 100, "account_id": 1, "campaign_group_id": 10, "name": "Search"},
                             {**a, "campaign_id": 101, "account_id": 1, "campaign_group_id": 10, "name": "Retarget"},
                             {**b, "campaign_id": 200, "account_id": 2, "campaign_group_id": 20, "name": "Tokyo"}],
        settings.CREATIVES: [{**a, "creative_id": 1000, "account_id": 1, "campaign_id": 100, "name": "Ad A"},
                             {**a, "creative_id": 1001, "account_id": 1, "campaign_id": 101, "name": "Ad B"},
                             {**b, "creative_id": 2000, "account_id": 2, "campaign_id": 200, "name": "Ad J"}],
        settings.CAMPAIGN_ANALYTICS: [
            {**a, "campaign_id": 100, "date_day": day1, "account_id": 1, **metrics(1000, 10, "12.50", 2, "80.00")},
            {**a, "campaign_id": 101, "date_day": day1, "account_id": 1, **metrics(500, 4, "7.25", 1, "40.00")},
            {**a, "campaign_id": 100, "date_day": day2, "account_id": 1, **metrics(2000, 20, "30.00", 0, "0")},
            {**b, "campaign_id": 200, "date_day": day2, "account_id": 2, **metrics(3000, 9, "1500", 3, "9000")}],
        settings.CREATIVE_ANALYTICS: [
            {**a, "creative_id": 1000, "campaign_id": 100, "date_day": day1, "account_id": 1,
             **metrics(1000, 10, "12.50", 2, "80.00")},
            {**a, "creative_id": 1001, "campaign_id": 101, "date_day": day1, "account_id": 1,
             **metrics(500, 4, "7.25", 1, "40.00")},
            {**a, "creative_id": 1000, "campaign_id": 100, "date_day": day2, "account_id": 1,
             **metrics(2000, 20, "30.00", 0, "0")},
            {**b, "creative_id": 2000, "campaign_id": 200, "date_day": day2, "account_id": 2,
             **metrics(3000, 9, "1500", 3, "9000")}],
    }
    resources = [dlt.resource(table_rows, name=table, columns=settings.TABLES[table], write_disposition="merge",
                              primary_key=[n for n, c in settings.TABLES[table].items() if c.get("primary_key")])
                 for table, table_rows in rows.items()]
    warehouse_pipeline("linkedin_ads", settings.DATASET_NAME, warehouse, root / "dlt").run(
        resources).raise_on_failed_jobs()


def test_the_unified_report_equals_the_hand_computed_answer(tmp_path: Path) -> None:
    warehouse = tmp_path / "warehouse.duckdb"
    _load_known_rows(warehouse, tmp_path)
    build_report(warehouse)
    d1, d2 = dt.date(2026, 11, 30), dt.date(2026, 12, 1)
    with duckdb.connect(str(warehouse), read_only=True) as con:
        def report(grain: str) -> list[tuple]:
            return con.execute(f"SELECT * FROM {ad_reporting.unified_model(grain)} ORDER BY ALL").fetchall()

        assert report("account") == [
            (d1, "linkedin_ads", "ws_a", "c1", "1", "US", "USD", 14, 1500, Decimal("19.75"), 3.0, 120.0),
            (d2, "linkedin_ads", "ws_a", "c1", "1", "US", "USD", 20, 2000, Decimal("30"), 0.0, 0.0),
            (d2, "linkedin_ads", "ws_b", "c2", "2", "JP", "JPY", 9, 3000, Decimal("1500"), 3.0, 9000.0),
        ]
        assert report("campaign") == [  # LinkedIn campaign groups; Tokyo's group is not loaded: no name, figures kept
            (d1, "linkedin_ads", "ws_a", "c1", "1", "US", "10", "Brand", "USD", 14, 1500, Decimal("19.75"), 3.0, 120.0),
            (d2, "linkedin_ads", "ws_a", "c1", "1", "US", "10", "Brand", "USD", 20, 2000, Decimal("30"), 0.0, 0.0),
            (d2, "linkedin_ads", "ws_b", "c2", "2", "JP", "20", None, "JPY", 9, 3000, Decimal("1500"), 3.0, 9000.0),
        ]
        assert report("ad_group") == [
            (d1, "linkedin_ads", "ws_a", "c1", "1", "US", "10", "Brand", "100", "Search", "USD", 10, 1000,
             Decimal("12.5"), 2.0, 80.0),
            (d1, "linkedin_ads", "ws_a", "c1", "1", "US", "10", "Brand", "101", "Retarget", "USD", 4, 500,
             Decimal("7.25"), 1.0, 40.0),
            (d2, "linkedin_ads", "ws_a", "c1", "1", "US", "10", "Brand", "100", "Search", "USD", 20, 2000,
             Decimal("30"), 0.0, 0.0),
            (d2, "linkedin_ads", "ws_b", "c2", "2", "JP", "20", None, "200", "Tokyo", "JPY", 9, 3000,
             Decimal("1500"), 3.0, 9000.0),
        ]
        assert [r[10:] for r in report("ad")] == [
            ("1000", "Ad A", "USD", 10, 1000, Decimal("12.5"), 2.0, 80.0),
            ("1001", "Ad B", "USD", 4, 500, Decimal("7.25"), 1.0, 40.0),
            ("1000", "Ad A", "USD", 20, 2000, Decimal("30"), 0.0, 0.0),
            ("2000", "Ad J", "JPY", 9, 3000, Decimal("1500"), 3.0, 9000.0),
        ]
        for grain in ad_reporting.GRAINS:
            assert mismatched_account_days(con, grain) == 0
        assert missing_days(con) == 0


def test_the_checks_pass_on_a_sync_and_fail_on_a_lost_or_changed_day(ads: AdsPlatform) -> None:
    ads.sync(WS1)
    ads.sync(WS2)
    build_report(ads.warehouse)
    with duckdb.connect(str(ads.warehouse)) as con:
        assert [mismatched_account_days(con, grain) for grain in ad_reporting.GRAINS] == [0, 0, 0, 0]
        assert missing_days(con) == 0
        accounts = con.execute("SELECT count(DISTINCT account_id) FROM analytics.ad_reporting__account_report").fetchone()
        assert accounts == (3,)
        con.execute("UPDATE analytics.ad_reporting__ad_report SET spend = spend + 1 "
                    "WHERE (date_day, ad_id) = (SELECT (date_day, ad_id) FROM analytics.ad_reporting__ad_report "
                    "ORDER BY ALL LIMIT 1)")
        assert mismatched_account_days(con, "ad") == 1
        first = con.execute("SELECT min(date_day) FROM analytics.ad_reporting__account_report").fetchone()[0]
        lost = con.execute("DELETE FROM analytics.ad_reporting__account_report WHERE date_day = ?", [first]).fetchone()
        assert missing_days(con) == 1 and mismatched_account_days(con, "account") == lost[0]


def test_each_grain_is_checked_against_its_own_pivot_while_the_day_runs(ads: AdsPlatform) -> None:
    # The sandbox's clock moves on every read, as the real one does between the CAMPAIGN and CREATIVE requests:
    # the running day's figures then differ between the two pivots, and neither grain may be called wrong.
    ticks = iter(range(1_000_000))
    ads.data.now = lambda: ads.clock.now + dt.timedelta(seconds=30 * next(ticks))
    ads.sync(WS1)
    build_report(ads.warehouse)
    pivots = {table: dict(ads.query(f"SELECT account_id, sum(impressions) FROM {settings.DATASET_NAME}.{table} "
                                    "WHERE date_day = ? GROUP BY ALL", [dt.date(2026, 12, 2)]))
              for table in (settings.CAMPAIGN_ANALYTICS, settings.CREATIVE_ANALYTICS)}
    assert pivots[settings.CAMPAIGN_ANALYTICS] != pivots[settings.CREATIVE_ANALYTICS]
    with duckdb.connect(str(ads.warehouse)) as con:
        assert [mismatched_account_days(con, grain) for grain in ad_reporting.GRAINS] == [0, 0, 0, 0]
        assert missing_days(con) == 0
