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


def columns(grain: str) -> tuple[str, ...]:
    """The report's columns at `grain`, in order."""
    if grain not in GRAINS:
        raise ValueError(f"unknown grain {grain!r}; expected one of {list(GRAINS)}")
    levels = GRAINS[1:GRAINS.index(grain) + 1]
    return ("date_day", "platform", "workspace_id", "connection_id", "account_id", "account_name",
            *(column for level in levels for column in _LEVELS[level]), "currency", *METRICS)


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
