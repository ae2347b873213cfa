"""Constants of the Google Ads source: tables, their columns, the GAQL fields each column is read from, and the
sync's windows (logic lives beside, in the modules).

Nothing here is personal data: Google Ads' terms allow its data to be used for creating, managing and reporting
on campaigns, and the source syncs exactly that — accounts, campaign structure, keywords and daily aggregate
metrics (no click_view, no user lists). Every table carries `workspace_id` and `connection_id` (declared with the
`x-connection` hint, so disconnecting an account erases its rows) and `synced_at`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from dlt.common.schema.typing import TTableSchemaColumns

from pipelines.ad_reporting import PlatformReport
from pipelines.privacy.categories import CONNECTION_HINT

SOURCE_NAME = "google_ads"
DATASET_NAME = "raw_google_ads"
PROVIDER = "google_ads"
API_VERSION = "v26"

# Conversions keep being attributed to the day of the click for the conversion window (Google's default 30
# days for most actions, configurable per action up to 90; Airbyte re-reads 14 by default): re-read that many
# days on every run. First sync: HISTORY_DAYS back. Report queries cover SLICE_DAYS days each.
CONVERSION_WINDOW_DAYS = 14
MAX_CONVERSION_WINDOW_DAYS = 90
SLICE_DAYS = 14
HISTORY_DAYS = 365
CALL_TIMEOUT_S = 600.0
# Entities are listed in full on the first sync; afterwards only what `change_status` reports changed (added,
# changed, removed) since the last sync is read again. ChangeStatus reaches back 90 days (a cursor older than
# CHANGE_STATUS_MAX_AGE, a day short of that, lists everything again), returns at most CHANGE_STATUS_LIMIT rows per
# query (a window with that many changes is listed in full too) and may show a change up to 3 minutes late (each
# window starts CHANGE_STATUS_DELAY before the last one ended). RESOURCE_NAMES_PER_QUERY keeps each re-read's
# `resource_name IN (...)` short.
CHANGE_STATUS_MAX_AGE = dt.timedelta(days=89)
CHANGE_STATUS_LIMIT = 10_000
CHANGE_STATUS_DELAY = dt.timedelta(minutes=3)
RESOURCE_NAMES_PER_QUERY = 500
PAGE_TOKEN_RESTARTS = 3  # an entity listing whose page token expires this many times in a row fails

CUSTOMERS_TABLE = "google_ads_customers"
CAMPAIGNS_TABLE = "google_ads_campaigns"
AD_GROUPS_TABLE = "google_ads_ad_groups"
ADS_TABLE = "google_ads_ads"
KEYWORDS_TABLE = "google_ads_keywords"
CAMPAIGN_DAILY_TABLE = "google_ads_campaign_daily"
AD_GROUP_DAILY_TABLE = "google_ads_ad_group_daily"
AD_DAILY_TABLE = "google_ads_ad_daily"


@dataclass(frozen=True)
class Field:
    """A column and the GAQL field it is read from (enums arrive as their names)."""

    column: str
    gaql: str
    data_type: str  # dlt data type: text, bigint, double, bool, date


@dataclass(frozen=True)
class Stream:
    """One table: the GAQL resource it is read from, its fields, its key (besides connection_id), whether it is
    a daily report (sliced by segments.date), the condition every query of it carries, and for an entity the
    ChangeStatusResourceType its changes are reported under."""

    table: str
    resource: str
    fields: tuple[Field, ...]
    key: tuple[str, ...]
    daily: bool = False
    where: str | None = None
    change_type: str | None = None

    @property
    def columns(self) -> TTableSchemaColumns:
        return table_columns(self.fields, self.key)

    @property
    def primary_key(self) -> list[str]:
        return ["connection_id", *self.key]


def table_columns(fields: tuple[Field, ...], key: tuple[str, ...]) -> TTableSchemaColumns:
    """The dlt declaration: the connection (erasure hint) and workspace, the fields, the sync time."""
    return {
        "connection_id": {"data_type": "text", "nullable": False, "primary_key": True, CONNECTION_HINT: True},
        "workspace_id": {"data_type": "text", "nullable": False},
        **{f.column: {"data_type": f.data_type, "nullable": f.column not in key,
                      **({"primary_key": True} if f.column in key else {})} for f in fields},
        "synced_at": {"data_type": "timestamp", "nullable": False},
    }


_CUSTOMER_ID = Field("customer_id", "customer.id", "text")
_METRICS = (
    Field("impressions", "metrics.impressions", "bigint"),
    Field("clicks", "metrics.clicks", "bigint"),
    Field("cost_micros", "metrics.cost_micros", "bigint"),
    Field("conversions", "metrics.conversions", "double"),
    Field("conversions_value", "metrics.conversions_value", "double"),
    Field("all_conversions", "metrics.all_conversions", "double"),
)
_DATE = Field("date", "segments.date", "date")

# Read on the connection's login customer and on each sub-manager under it (Google's documented walk: a manager
# lists itself at level 0 and its direct links at level 1); `manager_id` is the manager an account was listed under,
# `level` its distance from the login customer.
CUSTOMERS = Stream(CUSTOMERS_TABLE, "customer_client", (
    Field("customer_id", "customer_client.id", "text"),
    Field("manager_id", "customer.id", "text"),
    Field("descriptive_name", "customer_client.descriptive_name", "text"),
    Field("currency_code", "customer_client.currency_code", "text"),
    Field("time_zone", "customer_client.time_zone", "text"),
    Field("manager", "customer_client.manager", "bool"),
    Field("status", "customer_client.status", "text"),
    Field("level", "customer_client.level", "bigint"),
), key=("customer_id",), where="customer_client.level <= 1")

CAMPAIGNS = Stream(CAMPAIGNS_TABLE, "campaign", (
    Field("campaign_id", "campaign.id", "bigint"), _CUSTOMER_ID,
    Field("name", "campaign.name", "text"),
    Field("status", "campaign.status", "text"),
    Field("advertising_channel_type", "campaign.advertising_channel_type", "text"),
), key=("campaign_id",), change_type="CAMPAIGN")

AD_GROUPS = Stream(AD_GROUPS_TABLE, "ad_group", (
    Field("ad_group_id", "ad_group.id", "bigint"), Field("campaign_id", "campaign.id", "bigint"), _CUSTOMER_ID,
    Field("name", "ad_group.name", "text"),
    Field("status", "ad_group.status", "text"),
    Field("type", "ad_group.type", "text"),
), key=("ad_group_id",), change_type="AD_GROUP")

ADS = Stream(ADS_TABLE, "ad_group_ad", (
    Field("ad_group_id", "ad_group.id", "bigint"), Field("ad_id", "ad_group_ad.ad.id", "bigint"),
    Field("campaign_id", "campaign.id", "bigint"), _CUSTOMER_ID,
    Field("name", "ad_group_ad.ad.name", "text"),
    Field("type", "ad_group_ad.ad.type", "text"),
    Field("status", "ad_group_ad.status", "text"),
), key=("ad_group_id", "ad_id"), change_type="AD_GROUP_AD")

KEYWORDS = Stream(KEYWORDS_TABLE, "ad_group_criterion", (
    Field("ad_group_id", "ad_group.id", "bigint"), Field("criterion_id", "ad_group_criterion.criterion_id", "bigint"),
    Field("campaign_id", "campaign.id", "bigint"), _CUSTOMER_ID,
    Field("keyword_text", "ad_group_criterion.keyword.text", "text"),
    Field("match_type", "ad_group_criterion.keyword.match_type", "text"),
    Field("status", "ad_group_criterion.status", "text"),
    Field("negative", "ad_group_criterion.negative", "bool"),
), key=("ad_group_id", "criterion_id"), where="ad_group_criterion.type = 'KEYWORD'", change_type="AD_GROUP_CRITERION")

CAMPAIGN_DAILY = Stream(CAMPAIGN_DAILY_TABLE, "campaign", (
    _CUSTOMER_ID, Field("campaign_id", "campaign.id", "bigint"), _DATE, *_METRICS,
), key=("customer_id", "campaign_id", "date"), daily=True)

AD_GROUP_DAILY = Stream(AD_GROUP_DAILY_TABLE, "ad_group", (
    _CUSTOMER_ID, Field("campaign_id", "campaign.id", "bigint"), Field("ad_group_id", "ad_group.id", "bigint"),
    _DATE, *_METRICS,
), key=("customer_id", "ad_group_id", "date"), daily=True)

AD_DAILY = Stream(AD_DAILY_TABLE, "ad_group_ad", (
    _CUSTOMER_ID, Field("campaign_id", "campaign.id", "bigint"), Field("ad_group_id", "ad_group.id", "bigint"),
    Field("ad_id", "ad_group_ad.ad.id", "bigint"), _DATE, *_METRICS,
), key=("customer_id", "ad_group_id", "ad_id", "date"), daily=True)

ENTITY_STREAMS = (CAMPAIGNS, AD_GROUPS, ADS, KEYWORDS)

# What changed in an account within a window (the resource name of each changed entity is in the field named
# after its type); the window and LIMIT are added by the source.
CHANGE_STATUS_QUERY = (
    "SELECT change_status.resource_type, change_status.resource_status, change_status.last_change_date_time, "
    "change_status.campaign, change_status.ad_group, change_status.ad_group_ad, change_status.ad_group_criterion "
    "FROM change_status WHERE change_status.last_change_date_time BETWEEN '{start}' AND '{end}' "
    f"AND change_status.resource_type IN ({', '.join(repr(s.change_type) for s in ENTITY_STREAMS)}) "
    f"ORDER BY change_status.last_change_date_time LIMIT {CHANGE_STATUS_LIMIT}")

DAILY_STREAMS = (CAMPAIGN_DAILY, AD_GROUP_DAILY, AD_DAILY)
STREAMS = (CUSTOMERS, *ENTITY_STREAMS, *DAILY_STREAMS)
TABLES: dict[str, TTableSchemaColumns] = {s.table: s.columns for s in STREAMS}


def _daily_totals(table: str) -> str:
    return f"""
        SELECT d.date AS date_day, d.workspace_id, d.customer_id AS account_id,
               sum(d.impressions) AS impressions, sum(d.clicks) AS clicks,
               CAST(sum(d.cost_micros) AS DECIMAL(38, 0)) * CAST(0.000001 AS DECIMAL(38, 6)) AS spend
        FROM {DATASET_NAME}.{table} AS d
        GROUP BY ALL
    """


# The report's checks compare each grain with the resource it is read from (a campaign's metrics include
# spend no ad carries, so the grains are separate reports): accounts and campaigns with the campaign report.
PLATFORM_REPORT = PlatformReport(
    platform=PROVIDER,
    raw_daily_totals={"account": _daily_totals(CAMPAIGN_DAILY_TABLE), "campaign": _daily_totals(CAMPAIGN_DAILY_TABLE),
                      "ad_group": _daily_totals(AD_GROUP_DAILY_TABLE), "ad": _daily_totals(AD_DAILY_TABLE)},
)
