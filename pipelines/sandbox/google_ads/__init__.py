"""A local gRPC sandbox of the Google Ads API v26 that the official `google-ads` client talks to unchanged.

`GoogleAdsSandbox(build_world(...))` serves a manager account with three client accounts (optionally a sub-manager with clients of its own) in different time
zones and currencies (`world.py`), GAQL parsed and checked like the API (`gaql.py`), errors in the API's
`googleadsfailure-bin` shape, fault switches (`sandbox.faults.inject(...)`, `faults.py`) and request counts.

Pointing the client at it (the only difference from the real API)::

    with GoogleAdsSandbox(build_world()) as ads:   # also trusts its self-signed certificate in this process
        client = GoogleAdsClient(credentials=Credentials(token=ACCESS_TOKEN), developer_token=DEVELOPER_TOKEN,
                                 endpoint=ads.endpoint, login_customer_id=MANAGER_ID, use_proto_plus=True,
                                 version="v26")
"""

from pipelines.sandbox.google_ads.faults import AdsFault, AdsFaults
from pipelines.sandbox.google_ads.server import ACCESS_TOKEN, DEVELOPER_TOKEN, GoogleAdsSandbox
from pipelines.sandbox.google_ads.world import (
    CLIENTS,
    LATE_DAYS,
    MANAGER_ID,
    SUB_MANAGER_CLIENT,
    SUB_MANAGER_ID,
    World,
    build_world,
)

__all__ = ["ACCESS_TOKEN", "AdsFault", "AdsFaults", "CLIENTS", "DEVELOPER_TOKEN", "GoogleAdsSandbox", "LATE_DAYS",
           "MANAGER_ID", "SUB_MANAGER_CLIENT", "SUB_MANAGER_ID", "World", "build_world"]
