"""The LinkedIn Ads source: one connected LinkedIn member's ad accounts, campaign groups, campaigns, creatives
and daily campaign and creative analytics into `raw_linkedin_ads`, through dlt's REST client (LinkedIn has no
official Python SDK for its Marketing API).

Plain dlt, no Dagster: `linkedin_ads_source(sync)` yields the six tables of one connection, `sync.py` runs it
with plain dlt and saves the cursors once loaded; `python -m pipelines.linkedin_ads` runs every connection
(against the sandbox with GTG_ENV=sandbox). Campaign analytics only — never member-level or demographic data.
"""

from pipelines.linkedin_ads.settings import DATASET_NAME, SOURCE_NAME
from pipelines.linkedin_ads.source import AdsSync, linkedin_ads_source

__all__ = ["DATASET_NAME", "SOURCE_NAME", "AdsSync", "linkedin_ads_source"]
