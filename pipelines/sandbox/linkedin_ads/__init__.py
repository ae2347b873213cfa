"""A local wire-level sandbox of LinkedIn's Marketing API (versioned `/rest`): ad accounts, campaign groups,
campaigns, creatives and campaign analytics, for the LinkedIn Ads source's dlt REST client unchanged.

`build_data(seed)` makes the seeded members (tokens) and ad accounts; `LinkedInAdsServer(data)` serves them
on 127.0.0.1 (port 0 by default) with LinkedIn's headers, Rest.li parameters, paging and error shapes, fault
switches (`server.faults.inject(...)`, shared with the mail sandboxes) and request counts
(`server.http_requests`). Run it standalone with `python -m pipelines.sandbox.linkedin_ads`.
"""

from pipelines.sandbox.linkedin_ads.accounts import AdAccount, AdsData, Campaign, Creative, Member, Metrics, build_data
from pipelines.sandbox.linkedin_ads.server import LinkedInAdsServer

__all__ = ["AdAccount", "AdsData", "Campaign", "Creative", "LinkedInAdsServer", "Member", "Metrics", "build_data"]
