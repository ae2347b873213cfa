"""LinkedIn's versioned Marketing API through dlt's REST client: the headers every call needs, cursor paging of
the search finders, Rest.li 2.0 parameters for adAnalytics, and what LinkedIn's error statuses mean.

There is no official Python SDK for the Marketing API; dlt's `RESTClient` pages the search finders
(`metadata.nextPageToken` -> `pageToken`) and its session retries throttling and server errors
(`pipelines.connections.rest`). Rest.li parameters are written into the URL here, because an HTTP library
would percent-encode their parentheses and colons, which LinkedIn then reads as part of the value.
"""

from __future__ import annotations

import datetime as dt
import urllib.parse
from collections.abc import Iterator
from typing import Any

import requests
from dlt.sources.helpers.rest_client import RESTClient
from dlt.sources.helpers.rest_client.paginators import JSONResponseCursorPaginator

from pipelines.connections.errors import ReauthorizationRequired
from pipelines.connections.report import SyncReport
from pipelines.connections.rest import counted_session
from pipelines.linkedin_ads import settings


class LinkedInError(Exception):
    """A LinkedIn answer the sync cannot continue after (status and LinkedIn's code; never a value)."""


def restli_date(day: dt.date) -> str:
    return f"(year:{day.year},month:{day.month},day:{day.day})"


def restli_urns(kind: str, ids: list[int]) -> str:
    """`List(urn%3Ali%3A<kind>%3A1,...)`: Rest.li syntax literal, each URN percent-encoded."""
    return "List(" + ",".join(urllib.parse.quote(f"urn:li:{kind}:{i}", safe="") for i in ids) + ")"


def urn_id(urn: str) -> int:
    """`urn:li:sponsoredCampaign:123` -> 123."""
    return int(urn.rsplit(":", 1)[1])


class LinkedInClient:
    """One connection's calls: `base_url` is LinkedIn's (or the sandbox's) `/rest`."""

    def __init__(self, access_token: str, report: SyncReport, base_url: str = settings.API_BASE_URL) -> None:
        self.report = report
        self.rest = RESTClient(
            base_url=base_url,
            headers={"Authorization": f"Bearer {access_token}", "LinkedIn-Version": settings.API_VERSION,
                     "X-Restli-Protocol-Version": "2.0.0"},
            session=counted_session(report),
            paginator=JSONResponseCursorPaginator(cursor_path="metadata.nextPageToken", cursor_param="pageToken"),
            data_selector="elements",
        )

    def search(self, path: str, finder: str = "search") -> Iterator[dict[str, Any]]:
        """Every element of a search finder, page after page."""
        try:
            for page in self.rest.paginate(path, params={"q": finder, "pageSize": settings.PAGE_SIZE},
                                           timeout=settings.HTTP_TIMEOUT_S):
                yield from page
        except requests.HTTPError as exc:
            raise self.refused(exc.response) from None

    def accounts(self) -> list[dict[str, Any]]:
        return list(self.search("adAccounts"))

    def analytics(self, pivot: str, account_id: int, start: dt.date, end: dt.date) -> list[dict[str, Any]]:
        """Daily figures of one account's `pivot` objects from `start` to `end` (both included)."""
        query = "&".join([
            "q=analytics", f"pivot={pivot}", "timeGranularity=DAILY",
            f"dateRange=(start:{restli_date(start)},end:{restli_date(end)})",
            f"accounts={restli_urns('sponsoredAccount', [account_id])}",
            "fields=" + ",".join(("dateRange", "pivotValues", *settings.METRIC_FIELDS)),
        ])
        response = self.rest.get(f"adAnalytics?{query}", timeout=settings.HTTP_TIMEOUT_S)
        if response.status_code != 200:
            raise self.refused(response)
        return response.json()["elements"]

    @staticmethod
    def refused(response: requests.Response | None) -> Exception:
        """The exception for an error answer: 401 means the member must sign in again (LinkedIn's tokens
        expire after 60 days, or the member revoked the app)."""
        status = response.status_code if response is not None else None
        try:
            code = response.json().get("code") if response is not None else None
        except ValueError:
            code = None
        if status == 401:
            return ReauthorizationRequired(f"LinkedIn answered 401 {code or ''}".rstrip())
        return LinkedInError(f"LinkedIn answered {status} {code or ''}".rstrip())
