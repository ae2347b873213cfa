"""Constants of the LinkedIn Ads source: API version, request sizes, the lookback window, and every table's
column declaration (logic lives beside, in `client.py` and `source.py`).

Campaign analytics only. LinkedIn's API terms (Marketing API restricted uses) forbid using member data to
enrich a CRM, so nothing here describes a LinkedIn member: no member-level or demographic pivot
(`MEMBER_*`), no lead-form answers, no audience or profile data — only the advertiser's own account structure
and its aggregate daily performance. No column is personal data, so none carries an `x-data-category`; every
table carries the workspace and the connection (`x-connection`), so a disconnect erases it whole.
"""

from __future__ import annotations

from dlt.common.schema.typing import TTableSchemaColumns

from pipelines.ad_reporting import PlatformReport
from pipelines.privacy.categories import CONNECTION_HINT

SOURCE_NAME = "linkedin_ads"
DATASET_NAME = "raw_linkedin_ads"
API_BASE_URL = "https://api.linkedin.com/rest"
# LinkedIn-Version header: a monthly version of the versioned Marketing API (each is supported for a year).
API_VERSION = "202611"
PAGE_SIZE = 1000  # the search finders' largest page
# adAnalytics has no paging and silently cuts a response at 15,000 elements: date ranges are sized so that
# objects x days stays within it, and a response that reaches it is read again in halves.
ANALYTICS_MAX_ELEMENTS = 15_000
# Conversions are attributed up to 30 days after the click (LinkedIn's default post-click window), so every
# run reads the last 30 days again and merges them.
LOOKBACK_DAYS = 30
# How far back the first sync of an account reads.
INITIAL_DAYS = 365
METRIC_FIELDS = ("impressions", "clicks", "landingPageClicks", "costInLocalCurrency", "externalWebsiteConversions",
                 "conversionValueInLocalCurrency")
HTTP_TIMEOUT_S = 60

ACCOUNTS = "linkedin_ads_accounts"
CAMPAIGN_GROUPS = "linkedin_ads_campaign_groups"
CAMPAIGNS = "linkedin_ads_campaigns"
CREATIVES = "linkedin_ads_creatives"
CAMPAIGN_ANALYTICS = "linkedin_ads_campaign_analytics"
CREATIVE_ANALYTICS = "linkedin_ads_creative_analytics"

AMOUNT = {"data_type": "decimal", "precision": 38, "scale": 6, "nullable": True}
_TEXT = {"data_type": "text", "nullable": True}
_ID = {"data_type": "bigint", "nullable": False}


def _table(keys: tuple[str, ...], columns: TTableSchemaColumns) -> TTableSchemaColumns:
    """A table keyed by (connection_id, *keys), merged on that key, with the workspace and sync time."""
    return {
        "connection_id": {"data_type": "text", "nullable": False, "primary_key": True, CONNECTION_HINT: True},
        **{key: {**columns.get(key, _ID), "nullable": False, "primary_key": True} for key in keys},
        "workspace_id": {"data_type": "text", "nullable": False},
        **{name: {**column} for name, column in columns.items() if name not in keys},  # dlt names each dict
        "synced_at": {"data_type": "timestamp", "nullable": False},
    }


_METRICS: TTableSchemaColumns = {
    "impressions": {"data_type": "bigint", "nullable": False},
    "clicks": {"data_type": "bigint", "nullable": False},
    "landing_page_clicks": {"data_type": "bigint", "nullable": False},
    "cost_in_local_currency": {**AMOUNT, "nullable": False},
    "external_website_conversions": {"data_type": "bigint", "nullable": False},
    "conversion_value_in_local_currency": {**AMOUNT, "nullable": False},
}

# A day held for an object that LinkedIn no longer reports inside the re-read window (it leaves days without
# delivery out, so figures withdrawn entirely disappear): the source sends the key with this flag and dlt
# deletes the stored row.
WITHDRAWN = "_deleted"
_WITHDRAWN: TTableSchemaColumns = {WITHDRAWN: {"data_type": "bool", "nullable": True, "hard_delete": True}}

TABLES: dict[str, TTableSchemaColumns] = {
    ACCOUNTS: _table(("account_id",), {
        "name": _TEXT, "currency": {"data_type": "text", "nullable": False}, "status": _TEXT, "type": _TEXT,
        "test": {"data_type": "bool", "nullable": True},
    }),
    CAMPAIGN_GROUPS: _table(("campaign_group_id",), {
        "account_id": _ID, "name": _TEXT, "status": _TEXT, "run_start_at": {"data_type": "timestamp", "nullable": True},
    }),
    CAMPAIGNS: _table(("campaign_id",), {
        "account_id": _ID, "campaign_group_id": {"data_type": "bigint", "nullable": True}, "name": _TEXT,
        "status": _TEXT, "type": _TEXT, "cost_type": _TEXT, "objective_type": _TEXT, "daily_budget": AMOUNT,
        "daily_budget_currency": _TEXT, "run_start_at": {"data_type": "timestamp", "nullable": True},
        "created_at": {"data_type": "timestamp", "nullable": True},
        "last_modified_at": {"data_type": "timestamp", "nullable": True},
    }),
    CREATIVES: _table(("creative_id",), {
        "account_id": _ID, "campaign_id": {"data_type": "bigint", "nullable": True}, "name": _TEXT,
        "intended_status": _TEXT, "is_serving": {"data_type": "bool", "nullable": True},
        "created_at": {"data_type": "timestamp", "nullable": True},
        "last_modified_at": {"data_type": "timestamp", "nullable": True},
    }),
    CAMPAIGN_ANALYTICS: _table(("campaign_id", "date_day"), {
        "date_day": {"data_type": "date", "nullable": False}, "account_id": _ID, **_METRICS, **_WITHDRAWN,
    }),
    CREATIVE_ANALYTICS: _table(("creative_id", "date_day"), {
        "date_day": {"data_type": "date", "nullable": False}, "account_id": _ID,
        "campaign_id": {"data_type": "bigint", "nullable": True}, **_METRICS, **_WITHDRAWN,
    }),
}


def _daily_totals(table: str) -> str:
    return f"""
        SELECT date_day, workspace_id, CAST(account_id AS VARCHAR) AS account_id,
               sum(impressions) AS impressions, sum(clicks) AS clicks, sum(cost_in_local_currency) AS spend
        FROM {DATASET_NAME}.{table}
        GROUP BY ALL"""


# The report's checks compare each grain with the pivot it is built from: campaign groups, campaigns and
# accounts with the CAMPAIGN pivot, creatives with the CREATIVE pivot.
REPORT = PlatformReport(
    platform="linkedin_ads",
    raw_daily_totals={"account": _daily_totals(CAMPAIGN_ANALYTICS), "campaign": _daily_totals(CAMPAIGN_ANALYTICS),
                      "ad_group": _daily_totals(CAMPAIGN_ANALYTICS), "ad": _daily_totals(CREATIVE_ANALYTICS)},
)
