"""Constants of the Meta (Facebook) ads source: tables, columns with their data categories, the Graph API
version and fields, and how hard the source may push (logic lives beside, in the modules)."""

from __future__ import annotations

from dataclasses import dataclass

from dlt.common.schema.typing import TTableSchemaColumns

from pipelines.ad_reporting import GRAINS, PlatformReport
from pipelines.mail_common.stage import INDEX, PERSONAL, ChildStream, Stream, child_table, mail_table

PROVIDER = "facebook_ads"
SOURCE_NAME = "facebook_ads"
DATASET_NAME = "raw_facebook_ads"
API_VERSION = "v26.0"  # what facebook-business 26.0.x speaks
GRAPH_URL = "https://graph.facebook.com"
# Scopes a real connection's token needs: read ads and insights, read lead forms' leads of the ad account's pages.
SCOPES = ("ads_read", "leads_retrieval", "pages_show_list", "pages_read_engagement", "pages_manage_ads")
APP_ENV = {"app_id": "GTG_META_APP_ID", "app_secret": "GTG_META_APP_SECRET"}

ACCOUNTS_TABLE = "ad_accounts"
CAMPAIGNS_TABLE = "campaigns"
AD_SETS_TABLE = "ad_sets"
ADS_TABLE = "ads"
CREATIVES_TABLE = "ad_creatives"
INSIGHTS_TABLE = "ad_insights"
ACTIONS_TABLE = "ad_insight_actions"
FORMS_TABLE = "lead_forms"
LEADS_TABLE = "leads"

_TEXT = {"data_type": "text", "nullable": True}
_BIGINT = {"data_type": "bigint", "nullable": True}
_TIME = {"data_type": "timestamp", "nullable": True}
# Money in the account currency's major unit, exact (JPY has no minor unit: whole yen).
MONEY = {"data_type": "decimal", "precision": 38, "scale": 6, "nullable": True}
_STATUS = {"status": _TEXT, "effective_status": _TEXT}


def _copies(columns: TTableSchemaColumns) -> TTableSchemaColumns:
    """Each column with its own hints dict: dlt writes a column's name into its hints, so shared ones collide."""
    return {name: dict(hints) for name, hints in columns.items()}


def _table(key: str, columns: TTableSchemaColumns) -> TTableSchemaColumns:
    return mail_table(key, _copies(columns))


ACCOUNTS = Stream(DATASET_NAME, ACCOUNTS_TABLE, "account_id", _table("account_id", {
    "name": _TEXT, "currency": _TEXT, "timezone_name": _TEXT,
    "timezone_offset_hours_utc": {"data_type": "double", "nullable": True}, "account_status": _BIGINT,
}))
CAMPAIGNS = Stream(DATASET_NAME, CAMPAIGNS_TABLE, "campaign_id", _table("campaign_id", {
    "account_id": _TEXT, "name": _TEXT, "objective": _TEXT, **_STATUS, "daily_budget": MONEY,
    "created_time": _TIME, "updated_time": _TIME, "start_time": _TIME,
}))
AD_SETS = Stream(DATASET_NAME, AD_SETS_TABLE, "adset_id", _table("adset_id", {
    "account_id": _TEXT, "campaign_id": _TEXT, "name": _TEXT, **_STATUS, "optimization_goal": _TEXT,
    "billing_event": _TEXT, "created_time": _TIME, "updated_time": _TIME,
}))
ADS = Stream(DATASET_NAME, ADS_TABLE, "ad_id", _table("ad_id", {
    "account_id": _TEXT, "campaign_id": _TEXT, "adset_id": _TEXT, "creative_id": _TEXT, "name": _TEXT, **_STATUS,
    "created_time": _TIME, "updated_time": _TIME,
}))
CREATIVES = Stream(DATASET_NAME, CREATIVES_TABLE, "creative_id", _table("creative_id", {
    "account_id": _TEXT, "name": _TEXT, "title": _TEXT, "body": _TEXT, "object_type": _TEXT, "status": _TEXT,
    "call_to_action_type": _TEXT,
}))
# Graph fields requested per structure table (id is always answered); the columns above are their rows.
STRUCTURE_FIELDS = {
    CAMPAIGNS_TABLE: ("account_id", "name", "objective", "status", "effective_status", "daily_budget",
                      "created_time", "updated_time", "start_time"),
    AD_SETS_TABLE: ("account_id", "campaign_id", "name", "status", "effective_status", "optimization_goal",
                    "billing_event", "created_time", "updated_time"),
    ADS_TABLE: ("account_id", "campaign_id", "adset_id", "creative", "name", "status", "effective_status",
                "created_time", "updated_time"),
    CREATIVES_TABLE: ("account_id", "name", "title", "body", "object_type", "status", "call_to_action_type"),
}
# The Graph filtering prefix of each table listed by `updated_time` (`ad.updated_time`). Creatives have no
# `updated_time`: between full listings a sync reads the creatives of the ads it lists, expanded in place.
STRUCTURE_PREFIX = {CAMPAIGNS_TABLE: "campaign", AD_SETS_TABLE: "adset", ADS_TABLE: "ad"}
ACCOUNT_FIELDS = ("account_id", "name", "currency", "timezone_name", "timezone_offset_hours_utc", "account_status")

# One row per (account, ad, day in the account's time zone): the connection is one ad account, so the key
# (connection_id, insight_id = "<ad_id>:<day>") is that triple. Each row's actions and action values are rows
# of the child table, one per (kind, action type, attribution window): "conversions" can then be defined per
# account (which action types, which window) without syncing again.
ACTIONS = ChildStream(ACTIONS_TABLE, child_table("insight_id", _copies({
    "account_id": _TEXT, "ad_id": _TEXT, "date_day": {"data_type": "date", "nullable": True},
    "kind": _TEXT,  # action | action_value
    "action_type": _TEXT,
    "attribution_window": _TEXT,  # default (the account's attribution setting), 1d_click, 7d_click, 28d_click, 1d_view
    "value": MONEY,
})), field="actions", inherited=("account_id", "ad_id", "date_day"))
INSIGHTS = Stream(DATASET_NAME, INSIGHTS_TABLE, "insight_id", _table("insight_id", {
    "account_id": _TEXT, "campaign_id": _TEXT, "adset_id": _TEXT, "ad_id": _TEXT,
    "date_day": {"data_type": "date", "nullable": True}, "currency": _TEXT,
    "impressions": _BIGINT, "reach": _BIGINT, "clicks": _BIGINT, "spend": MONEY,
}), child=ACTIONS)
INSIGHT_FIELDS = ("account_id", "campaign_id", "adset_id", "ad_id", "account_currency", "impressions", "reach",
                  "clicks", "spend", "actions", "action_values")
ATTRIBUTION_WINDOWS = ("1d_click", "7d_click", "28d_click", "1d_view")
DEFAULT_WINDOW = "default"  # the `value` Meta reports: the account's attribution setting (7-day click or 1-day view)

FORMS = Stream(DATASET_NAME, FORMS_TABLE, "form_id", _table("form_id", {
    "account_id": _TEXT, "page_id": _TEXT, "name": _TEXT, "status": _TEXT, "created_time": _TIME,
    "questions": _TEXT,  # JSON list of the custom questions' keys (not answers)
}))
# A lead's data subject is the person who filled the form: their e-mail, else their phone number. Every value
# they typed is encrypted under that subject's key; custom answers are free text, so they are personal too.
LEADS = Stream(DATASET_NAME, LEADS_TABLE, "lead_id", _table("lead_id", {
    "account_id": _TEXT, "form_id": _TEXT, "ad_id": _TEXT, "created_time": _TIME,
    "subject_ref": {"data_type": "binary", "nullable": True, "x-subject-ref": True,
                    "x-subject-of": ["email", "phone_number"]},
    "email": {**PERSONAL, "x-data-category": "user.contact.email"},
    "email_bidx": {**INDEX, "x-blind-index-of": "email"},
    "full_name": {**PERSONAL, "x-data-category": "user.name"},
    "phone_number": {**PERSONAL, "x-data-category": "user.contact.phone_number"},
    "phone_number_bidx": {**INDEX, "x-blind-index-of": "phone_number"},
    "answers": {**PERSONAL, "x-data-category": "user.content.form_answer"},  # JSON {question: answer}
}))
LEAD_FIELDS = ("created_time", "ad_id", "form_id", "field_data")
FORM_FIELDS = ("name", "status", "created_time", "questions")
# field_data names Meta uses for the standard questions (the rest are custom answers).
EMAIL_FIELDS = ("email", "work_email")
NAME_FIELDS = ("full_name",)
FIRST_LAST_FIELDS = ("first_name", "last_name")
PHONE_FIELDS = ("phone_number", "work_phone_number")

# The raw truth the shared ad report is checked against: spend and delivery per account and local day, from the
# ad-level insights every grain is built from.
REPORT = PlatformReport(PROVIDER, dict.fromkeys(GRAINS, f"""
    SELECT date_day, workspace_id, account_id, sum(impressions) AS impressions, sum(clicks) AS clicks,
           sum(spend) AS spend
    FROM {DATASET_NAME}.{INSIGHTS_TABLE}
    GROUP BY ALL
"""))

# Leads per account and local day, the raw truth the lead marts (ad_performance_daily, leads_daily) are checked
# against.
RAW_DAILY_LEADS = f"""
    SELECT l.workspace_id, l.account_id, CAST(timezone(a.timezone_name, l.created_time) AS DATE) AS date_day,
           count(*) AS leads
    FROM {DATASET_NAME}.{LEADS_TABLE} AS l
    JOIN {DATASET_NAME}.{ACCOUNTS_TABLE} AS a ON a.connection_id = l.connection_id AND a.account_id = l.account_id
    GROUP BY ALL"""

STREAMS = (ACCOUNTS, CAMPAIGNS, AD_SETS, ADS, CREATIVES, INSIGHTS, FORMS, LEADS)

# Currencies Meta counts in whole units (its currency "offset" is 1, not 100): budgets are not in cents.
ZERO_DECIMAL_CURRENCIES = frozenset({"CLP", "COP", "CRC", "HUF", "ISK", "IDR", "JPY", "KRW", "PYG", "TWD", "VND"})

LOOKBACK_DAYS = 28  # conversions keep changing for the longest attribution window
HISTORY_MONTHS = 37  # the furthest back Meta serves insights
# DuckDB's memory cap while this source loads, below the shared GTG_LOAD_MEMORY_LIMIT: a big sync loads piece
# after piece, each merge rescanning tables the pieces before grew, and what it scans stays cached up to the
# cap; at 64 MB the pieces stay level and load no slower (README, "Meta ads sync").
LOAD_MEMORY_LIMIT = "64MB"


@dataclass(frozen=True)
class SyncOptions:
    """How much a sync asks for at once and how patiently it waits.

    `slice_days`: days per async report run; `fallback_days`: days per synchronous request when a run
    fails; `page_size`: rows per page (halved on "reduce the amount of data"); polling starts at
    `poll_initial_s` and doubles up to `poll_max_s`, giving up (the run counts as failed) after
    `poll_timeout_s`; a sync loads its insights in pieces of about `piece_rows` rows (one dlt load each,
    slices short enough that one holds at most that many rows however many ads the account has); structure
    is listed whole when its last full listing is `structure_full_days` old,
    else only what was updated since (`updated_time`); with any usage header at or above
    `usage_threshold_pct` the next request waits for the account's budget to refill (at most
    `max_usage_wait_s`)."""

    lookback_days: int = LOOKBACK_DAYS
    slice_days: int = 90
    piece_rows: int = 100_000
    fallback_days: int = 7
    page_size: int = 500
    min_page_size: int = 25
    poll_initial_s: float = 1.0
    poll_max_s: float = 30.0
    poll_timeout_s: float = 3600.0
    structure_full_days: float = 1.0
    usage_threshold_pct: float = 75.0
    max_usage_wait_s: float = 300.0
    http_timeout_s: float = 120.0


REAL_OPTIONS = SyncOptions()
# The sandbox answers at once: poll it without sleeping seconds.
SANDBOX_OPTIONS = SyncOptions(poll_initial_s=0.01, poll_max_s=0.05, poll_timeout_s=10.0, max_usage_wait_s=5.0,
                              http_timeout_s=30.0)
