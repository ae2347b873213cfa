"""The cross-platform ad report's integrity checks, written once for every platform in `catalog.AD_PLATFORMS`.

Fivetran's ad_reporting package tests its unified report against each platform package; here the yardstick is
the raw tables themselves: each platform's settings give, per grain, one SELECT of the daily totals per
workspace, account and day in the loaded table that grain is built from (`PlatformReport.raw_daily_totals`),
and every unified mart must hold exactly those impressions, clicks and spend, account by account and day by
day (a staging model that drops rows in a join, double-counts through one, or shifts a day fails it). The account report must also miss no day a platform has
raw data for. Meta's own marts are held to the same raw truth: `ad_performance_daily`'s delivery equals Meta's
insights and its leads, like `leads_daily`'s, equal the leads loaded, account by account and local day by day. A
platform whose tables are not loaded yet (nothing connected) has no raw totals and is skipped. Metadata holds
counts only.
"""

from __future__ import annotations

import duckdb
from dagster import AssetCheckResult, AssetKey, asset_check

from pipelines.ad_reporting import GRAINS, PlatformReport, unified_model
from pipelines.catalog import AD_PLATFORMS
from pipelines.facebook import settings as facebook
from pipelines.sql import literal
from resources.warehouse import WAREHOUSE_POOL, WarehouseResource

_TOTALS = ("impressions", "clicks", "spend")


def raw_totals(con: duckdb.DuckDBPyConnection, grain: str,
               platforms: tuple[PlatformReport, ...] = AD_PLATFORMS) -> str | None:
    """One SELECT of every loaded platform's raw daily totals for `grain`, tagged with its platform (None: none
    loaded)."""
    loaded = []
    for platform in platforms:
        totals = platform.raw_daily_totals[grain]
        if not _loaded(con, totals):
            continue
        loaded.append(f"SELECT {literal(platform.platform)} AS platform, date_day, workspace_id, account_id, "
                      f"impressions, clicks, spend FROM ({totals})")
    return " UNION ALL ".join(loaded) or None


def mismatched_account_days(con: duckdb.DuckDBPyConnection, grain: str,
                            platforms: tuple[PlatformReport, ...] = AD_PLATFORMS, model: str | None = None) -> int:
    """Platform, workspace, account and day rows whose totals differ between the `grain` mart (or `model`, a mart
    at that grain) and the raw tables (or that only one side holds), for the platforms loaded."""
    raw = raw_totals(con, grain, platforms)
    if raw is None:
        return 0
    report = (f"SELECT platform, date_day, workspace_id, account_id, {', '.join(f'sum({m}) AS {m}' for m in _TOTALS)} "
              f"FROM {model or unified_model(grain)} WHERE platform IN (SELECT platform FROM ({raw})) GROUP BY ALL")
    return _differing_rows(con, raw, report, ("platform", "date_day", "workspace_id", "account_id"), _TOTALS)


def _loaded(con: duckdb.DuckDBPyConnection, sql: str) -> bool:
    """Whether the tables `sql` reads are loaded (a platform nobody connected has none)."""
    try:
        con.execute(f"DESCRIBE {sql}")
    except duckdb.CatalogException:
        return False
    return True


def _differing_rows(con: duckdb.DuckDBPyConnection, raw: str, report: str, keys: tuple[str, ...],
                    measures: tuple[str, ...]) -> int:
    """Rows of `raw` and `report` (matched on `keys`) whose `measures` differ, or that only one side holds."""
    differs = " OR ".join(f"r.{m} IS DISTINCT FROM u.{m}" for m in measures)
    return con.execute(f"SELECT count(*) FROM ({raw}) r FULL OUTER JOIN ({report}) u USING ({', '.join(keys)}) "
                       f"WHERE {differs}").fetchone()[0]


def missing_days(con: duckdb.DuckDBPyConnection, platforms: tuple[PlatformReport, ...] = AD_PLATFORMS) -> int:
    """Platform and day pairs that hold raw data but no row of the account report."""
    raw = raw_totals(con, "account", platforms)
    if raw is None:
        return 0
    return con.execute(f"""
        SELECT count(*) FROM (SELECT DISTINCT platform, date_day FROM ({raw})
                              EXCEPT SELECT DISTINCT platform, date_day FROM {unified_model('account')})""").fetchone()[0]


def _totals_check(grain: str):
    schema, name = unified_model(grain).split(".")

    @asset_check(asset=AssetKey([schema, name]), name="totals_equal_raw_tables", pool=WAREHOUSE_POOL,
                 description="Per platform, workspace, ad account and day, impressions, clicks and spend equal the "
                             "platform's raw tables.")
    def totals_equal_raw(warehouse: WarehouseResource) -> AssetCheckResult:
        with warehouse.connect() as con:
            mismatched = mismatched_account_days(con, grain)
        return AssetCheckResult(passed=mismatched == 0, metadata={
            "mismatched_account_days": mismatched, "platforms_checked": len(AD_PLATFORMS)})

    return totals_equal_raw


@asset_check(asset=AssetKey(unified_model("account").split(".")), name="no_platform_missing_a_day",
             pool=WAREHOUSE_POOL, description="No platform misses a day of the report it has raw data for.")
def no_platform_missing_a_day(warehouse: WarehouseResource) -> AssetCheckResult:
    with warehouse.connect() as con:
        missing = missing_days(con)
    return AssetCheckResult(passed=missing == 0, metadata={"missing_platform_days": missing})


def mismatched_lead_days(con: duckdb.DuckDBPyConnection, model: str) -> int:
    """Workspace, account and day rows whose leads differ between `model` and the leads loaded from Meta."""
    if not _loaded(con, facebook.RAW_DAILY_LEADS):
        return 0
    report = (f"SELECT workspace_id, account_id, date_day, sum(leads) AS leads FROM {model} "
              f"WHERE platform = {literal(facebook.PROVIDER)} GROUP BY ALL HAVING sum(leads) > 0")
    return _differing_rows(con, facebook.RAW_DAILY_LEADS, report, ("workspace_id", "account_id", "date_day"),
                           ("leads",))


_PERFORMANCE = "analytics.ad_performance_daily"
_LEADS = "analytics.leads_daily"


@asset_check(asset=AssetKey(_PERFORMANCE.split(".")), name="delivery_equals_raw_insights", pool=WAREHOUSE_POOL,
             description="Per workspace, ad account and day, impressions, clicks and spend equal Meta's insights.")
def delivery_equals_raw_insights(warehouse: WarehouseResource) -> AssetCheckResult:
    with warehouse.connect() as con:
        mismatched = mismatched_account_days(con, "ad", (facebook.REPORT,), _PERFORMANCE)
    return AssetCheckResult(passed=mismatched == 0, metadata={"mismatched_account_days": mismatched})


def _leads_check(model: str):
    @asset_check(asset=AssetKey(model.split(".")), name="leads_equal_raw_leads", pool=WAREHOUSE_POOL,
                 description="Per workspace, ad account and day (the account's time zone), leads equal the leads "
                             "loaded from Meta.")
    def leads_equal_raw_leads(warehouse: WarehouseResource) -> AssetCheckResult:
        with warehouse.connect() as con:
            mismatched = mismatched_lead_days(con, model)
        return AssetCheckResult(passed=mismatched == 0, metadata={"mismatched_account_days": mismatched})

    return leads_equal_raw_leads


AD_REPORTING_CHECKS = [*(_totals_check(grain) for grain in GRAINS), no_platform_missing_a_day,
                       delivery_equals_raw_insights, *(_leads_check(model) for model in (_PERFORMANCE, _LEADS))]
