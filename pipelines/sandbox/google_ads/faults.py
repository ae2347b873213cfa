"""Fault switches of the Google Ads sandbox: what the real API does to a sync, on demand.

Each armed fault hits the next `times` matching calls after letting `skip` through (matching: same RPC
method, same customer, when given), so tests are deterministic; `fired` counts what happened
(`pipelines.sandbox.faults`). The error shapes (status, GoogleAdsFailure in `googleadsfailure-bin`) live in
the server.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from pipelines.sandbox.faults import FaultQueue


class AdsFault(str, Enum):
    DAILY_QUOTA = "daily_quota"  # RESOURCE_EXHAUSTED, QuotaError.RESOURCE_EXHAUSTED (the developer token's day is used up)
    RATE_LIMIT = "rate_limit"  # RESOURCE_EXHAUSTED, QuotaError.RESOURCE_TEMPORARILY_EXHAUSTED with a retry delay
    EXPIRED_TOKEN = "expired_token"  # UNAUTHENTICATED, AuthenticationError.OAUTH_TOKEN_EXPIRED
    INTERNAL = "internal"  # INTERNAL, InternalError.INTERNAL_ERROR
    UNAVAILABLE = "unavailable"  # UNAVAILABLE, no failure details (a front end dropped the call)
    EXPIRED_PAGE_TOKEN = "expired_page_token"  # Search with a page token: RequestError.EXPIRED_PAGE_TOKEN
    SLOW = "slow"  # answer after `delay` seconds
    STREAM_CUT = "stream_cut"  # SearchStream: half the rows, then the stream ends with UNAVAILABLE


@dataclass
class ArmedFault:
    kind: AdsFault
    times: int = 1
    method: str | None = None  # "Search", "SearchStream", "ListAccessibleCustomers"; None: any
    customer_id: str | None = None
    skip: int = 0
    delay: float = 0.5

    def matches(self, method: str, customer_id: str | None, paged: bool) -> bool:
        if self.kind is AdsFault.EXPIRED_PAGE_TOKEN and not paged:
            return False
        if self.kind is AdsFault.STREAM_CUT and method != "SearchStream":
            return False
        return (self.method in (None, method)) and (self.customer_id in (None, customer_id))


class AdsFaults(FaultQueue[ArmedFault]):
    """The armed faults of one sandbox, consumed in arrival order by the server's threads."""

    def inject(self, kind: AdsFault | str, times: int = 1, *, method: str | None = None,
               customer_id: str | None = None, skip: int = 0, delay: float = 0.5) -> ArmedFault:
        return self.arm(ArmedFault(AdsFault(kind), times, method, customer_id, skip, delay))

    def take(self, method: str, customer_id: str | None, paged: bool = False) -> ArmedFault | None:
        return self.take_matching(lambda fault: fault.matches(method, customer_id, paged), method)
