"""The one shape every ad platform reports in: Fivetran ad_reporting's column names, plus the workspace, the
connection and the account's currency, which a multi-tenant, multi-currency CRM cannot do without.

Each platform P provides four staging models `stg_<P>__<grain>_report` (one row per platform object and day
in the ad account's time zone) with exactly `columns(grain)`, typed as `COLUMN_TYPES`; the unified marts
`ad_reporting__<grain>_report` are their UNION ALL BY NAME. Meta's ad sets are ad groups; LinkedIn's campaign
groups are campaigns, its campaigns ad groups and its creatives ads (Fivetran's mapping). Each platform's
settings also define a `PlatformReport`, whose raw totals the report's checks compare with the marts, grain by
grain.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

PLATFORMS = ("facebook_ads", "google_ads", "linkedin_ads")
GRAINS = ("account", "campaign", "ad_group", "ad")
METRICS = ("clicks", "impressions", "spend", "conversions", "conversions_value")

_LEVELS = {"campaign": ("campaign_id", "campaign_name"), "ad_group": ("ad_group_id", "ad_group_name"),
           "ad": ("ad_id", "ad_name")}

COLUMN_TYPES = {
    "date_day": "DATE", "platform": "VARCHAR", "workspace_id": "VARCHAR", "connection_id": "VARCHAR",
    "account_id": "VARCHAR", "account_name": "VARCHAR",
    **{column: "VARCHAR" for pair in _LEVELS.values() for column in pair},
    "currency": "VARCHAR",  # ISO 4217 code of the ad account
    "clicks": "BIGINT", "impressions": "BIGINT",
    "spend": "DECIMAL(38,6)",  # account currency, major units (a currency without minor unit stays whole)
    "conversions": "DOUBLE", "conversions_value": "DOUBLE",  # under the platform's declared attribution setting
}

# Each column's meaning, the same on every platform and grain: the report's models adopt them through their header
# (`contract: {ad_report: <grain>}`, see assets/sql_models.py) instead of each describing them again. What differs
# between platforms is named here; how each counts conversions is its base staging model's description.
COLUMN_DOCS = {
    "date_day": "The day, in the ad account's reporting time zone.",
    "platform": "The ad platform: facebook_ads, google_ads or linkedin_ads.",
    "workspace_id": "The GTG CRM workspace that connected the ad account.",
    "connection_id": "The connection the figures were synced through.",
    "account_id": "The platform's ad account id (Meta's without act_, a Google Ads customer id without dashes).",
    "account_name": "The ad account's name.",
    "campaign_id": "Campaign id (a LinkedIn campaign group).",
    "campaign_name": "Campaign name.",
    "ad_group_id": "Ad group id (a Meta ad set, a LinkedIn campaign).",
    "ad_group_name": "Ad group name.",
    "ad_id": "Ad id (a LinkedIn creative).",
    "ad_name": "Ad name (null for an ad left unnamed, as many Google Ads ads are).",
    "currency": "ISO 4217 currency of the ad account; every amount of the row is in it.",
    "clicks": "Clicks (Meta: all clicks; LinkedIn: chargeable clicks).",
    "impressions": "Impressions (sends, for LinkedIn message ads).",
    "spend": "Cost in the account's currency, major units (a currency without minor units, such as JPY, stays whole).",
    "conversions": "Conversions under the platform's default attribution setting (its staging models say which).",
    "conversions_value": "Value of those conversions in the account's currency.",
}


def columns(grain: str) -> tuple[str, ...]:
    """The report's columns at `grain`, in order."""
    if grain not in GRAINS:
        raise ValueError(f"unknown grain {grain!r}; expected one of {list(GRAINS)}")
    levels = GRAINS[1:GRAINS.index(grain) + 1]
    return ("date_day", "platform", "workspace_id", "connection_id", "account_id", "account_name",
            *(column for level in levels for column in _LEVELS[level]), "currency", *METRICS)


def naming_docs(grain: str) -> dict[str, str]:
    """The columns naming a row at `grain` (connection, account, then each level's id and name down to the
    grain), in the report's order, with their descriptions: a platform's own models name their rows the same."""
    return {column: doc for column, doc in column_docs(grain).items() if column == "connection_id"
            or column.endswith(("_id", "_name")) and column != "workspace_id"}


def column_docs(grain: str) -> dict[str, str]:
    """The report's columns at `grain`, in order, with their descriptions."""
    return {column: COLUMN_DOCS[column] for column in columns(grain)}


def staging_model(platform: str, grain: str) -> str:
    """`staging.stg_<platform>__<grain>_report`."""
    return f"staging.stg_{platform}__{grain}_report"


def unified_model(grain: str) -> str:
    """`analytics.ad_reporting__<grain>_report`."""
    return f"analytics.ad_reporting__{grain}_report"


@dataclass(frozen=True)
class PlatformReport:
    """A platform's raw truth for the report's checks: `raw_daily_totals[grain]` is one SELECT returning
    `date_day, workspace_id, account_id, impressions, clicks, spend` per account and day from the loaded table
    that grain's staging model is built from.

    Each grain is held to its own source because a platform's levels are separate requests (LinkedIn's
    CAMPAIGN and CREATIVE pivots, Google Ads' campaign and ad resources): figures of a day still running, or
    restated between two requests, legitimately differ between them, while a grain's model must never differ
    from the table it reads."""

    platform: str
    raw_daily_totals: Mapping[str, str]

    def __post_init__(self) -> None:
        if self.platform not in PLATFORMS:
            raise ValueError(f"unknown ad platform {self.platform!r}; expected one of {list(PLATFORMS)}")
        if set(self.raw_daily_totals) != set(GRAINS):
            raise ValueError(f"{self.platform}: raw daily totals are needed for exactly the grains {list(GRAINS)}")
