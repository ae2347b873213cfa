"""Local wire-level sandbox of the Graph API Marketing endpoints (ad accounts, insights, lead forms).

`FacebookServer` serves the seeded `World` of `build_world` (three ad accounts: one in a time zone west of
UTC, one in JPY) to the `facebook-business` SDK unchanged; tests change the world between syncs
(`AdAccount.late_conversions`, `delete_campaign`, `rename_ad`, `add_leads`, `World.now`), arm fault switches
(`server.faults.inject(...)`: RATE_LIMIT with Meta's `code` 17/613/80004, PROVIDER_ERROR with `code`/`subcode`
such as 1/99 "reduce the amount of data", EXPIRED_TOKEN (190), SERVER_ERROR, SLOW, DROP, TRUNCATE, and
JOB_FAILED for the next async report run) and read the counters (`server.http_requests`, `server.calls`,
`server.throttled`, `server.insight_ranges`).

Pointing the SDK at it (the only difference from the real API)::

    api = FacebookAdsApi.init(access_token=account.token, api_version="v26.0", crash_log=False)
    api._session.GRAPH = server.url        # or FacebookSession.GRAPH for every session

Run it standalone with `python -m pipelines.sandbox.facebook` (prints the URL and each account's token).
"""

from pipelines.sandbox.facebook.adaccounts import (
    ACTION_TYPES, WINDOWS, AdAccount, AdObject, InsightDay, Lead, LeadForm, World, build_world,
)
from pipelines.sandbox.facebook.server import REDUCE_DATA, FacebookServer, graph_error

__all__ = [
    "ACTION_TYPES", "REDUCE_DATA", "WINDOWS", "AdAccount", "AdObject", "FacebookServer", "InsightDay", "Lead",
    "LeadForm", "World", "build_world", "graph_error",
]
