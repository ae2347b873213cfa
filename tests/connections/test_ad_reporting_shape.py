"""The ad-report shape every platform's staging models follow (Fivetran ad_reporting's names, plus workspace,
connection and currency), and the staging models present checked against it once built."""

from __future__ import annotations

import pytest

from pipelines import ad_reporting
from pipelines.ad_reporting import PlatformReport

_HEAD = ("date_day", "platform", "workspace_id", "connection_id", "account_id", "account_name")
_TAIL = ("currency", "clicks", "impressions", "spend", "conversions", "conversions_value")


def test_the_columns_of_each_grain_are_fivetrans_names_in_order() -> None:
    assert ad_reporting.columns("account") == (*_HEAD, *_TAIL)
    assert ad_reporting.columns("campaign") == (*_HEAD, "campaign_id", "campaign_name", *_TAIL)
    assert ad_reporting.columns("ad_group") == (*_HEAD, "campaign_id", "campaign_name", "ad_group_id",
                                                "ad_group_name", *_TAIL)
    assert ad_reporting.columns("ad") == (*_HEAD, "campaign_id", "campaign_name", "ad_group_id", "ad_group_name",
                                          "ad_id", "ad_name", *_TAIL)
    assert set(ad_reporting.COLUMN_TYPES) == set(ad_reporting.columns("ad"))
    assert ad_reporting.staging_model("linkedin_ads", "ad_group") == "staging.stg_linkedin_ads__ad_group_report"
    assert ad_reporting.unified_model("ad") == "analytics.ad_reporting__ad_report"
    with pytest.raises(ValueError, match="unknown grain 'keyword'"):
        ad_reporting.columns("keyword")
    with pytest.raises(ValueError, match="unknown ad platform 'tiktok_ads'"):
        PlatformReport("tiktok_ads", "SELECT 1")
