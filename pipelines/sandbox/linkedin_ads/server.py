"""A wire-level sandbox of LinkedIn's versioned Marketing API (`/rest`): ad accounts, campaign groups,
campaigns, creatives and `adAnalytics`.

What it holds to, as LinkedIn does:
- every call needs `LinkedIn-Version: YYYYMM` (an active version) and `X-Restli-Protocol-Version: 2.0.0`;
  without them the call is rejected (400 VERSION_MISSING / 426 NONEXISTENT_VERSION / 400 for the protocol);
- structured parameters are Rest.li 2.0, parsed strictly from the raw query string (`restli.py`);
- the search finders (`adAccounts`, `adCampaignGroups`, `adCampaigns`, `creatives?q=criteria`) page by
  cursor since version 202401: `pageSize` (default 100, at most 1000) and `pageToken`, the next token in
  `metadata.nextPageToken`; index paging (`start`) is refused;
- `adAnalytics?q=analytics` has no paging at all: `start`/`count`/`pageToken` are refused, and a response holds
  at most 15,000 elements — more are cut off without a word (LinkedIn's documented behaviour), so a client must
  size its date ranges;
- `fields` selects the metrics (at most 20; without it only impressions and clicks come back); member-level
  and demographic pivots (`MEMBER_*`) are not served: the platform never asks for them;
- errors in LinkedIn's shape (`status`, `serviceErrorCode`, `code`, `message`): 401 for an expired or
  revoked token, 429 with Retry-After, 5xx, armed through the shared fault switches (`server.faults`);
  every request is counted per endpoint (`server.http_requests`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from decimal import Decimal

from pipelines.sandbox.linkedin_ads import restli
from pipelines.sandbox.linkedin_ads.accounts import ZERO, AdAccount, AdsData, Metrics
from pipelines.sandbox.mail.http import (
    ProviderError, Request, Response, Route, SandboxServer, decode_cursor, encode_cursor, path_pattern,
)

ACTIVE_VERSIONS = frozenset({"202512", "202601", "202603", "202606", "202609", "202611"})
MAX_ANALYTICS_ELEMENTS = 15_000
MAX_FIELDS = 20
DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE = 100, 1000
# Metric name -> how it is read from a day's Metrics (amounts are strings, as LinkedIn sends BigDecimals).
METRICS: dict[str, Callable[[Metrics], int | str]] = {
    "impressions": lambda m: m.impressions,
    "clicks": lambda m: m.clicks,
    "landingPageClicks": lambda m: m.landing_page_clicks,
    "costInLocalCurrency": lambda m: str(m.cost),
    "externalWebsiteConversions": lambda m: m.conversions,
    "conversionValueInLocalCurrency": lambda m: str(m.conversion_value),
}
STRUCTURE_FIELDS = frozenset({"dateRange", "pivotValues"})
PIVOTS = ("ACCOUNT", "CAMPAIGN_GROUP", "CAMPAIGN", "CREATIVE")
FACETS = {"accounts": "sponsoredAccount", "campaignGroups": "sponsoredCampaignGroup",
          "campaigns": "sponsoredCampaign", "creatives": "sponsoredCreative"}


def error(status: int, code: str, message: str, service_code: int | None = None) -> ProviderError:
    body: dict = {"status": status, "code": code, "message": message}
    if service_code is not None:
        body["serviceErrorCode"] = service_code
    return ProviderError(Response.json(body, status))


def millis(moment: dt.datetime) -> int:
    return int(moment.timestamp() * 1000)


def urn(kind: str, value: int) -> str:
    return f"urn:li:{kind}:{value}"


class LinkedInAdsServer(SandboxServer):
    """`with LinkedInAdsServer(data) as server:` base URL `server.url + "/rest"`; tokens are `data.members`."""

    name = "linkedin-ads"

    def __init__(self, data: AdsData, host: str = "127.0.0.1", port: int = 0) -> None:
        self.data = data
        self.expired_tokens: set[str] = set()
        self.max_analytics_elements = MAX_ANALYTICS_ELEMENTS
        self.queries: list[tuple[str, str]] = []  # (endpoint, raw query string) of every versioned call, in order
        super().__init__(data.members, host, port)  # type: ignore[arg-type] - members carry a .token

    def routes(self) -> list[Route]:
        def get(template: str, endpoint: str, handler: Callable[[Request], Response]) -> Route:
            return Route("GET", path_pattern(template), endpoint, lambda r: handler(self.versioned(r)))

        return [
            get("/rest/adAccounts", "adAccounts.search", self.ad_accounts),
            get("/rest/adAccounts/{account}/adCampaignGroups", "adCampaignGroups.search", self.campaign_groups),
            get("/rest/adAccounts/{account}/adCampaigns", "adCampaigns.search", self.campaigns),
            get("/rest/adAccounts/{account}/creatives", "creatives.criteria", self.creatives),
            get("/rest/adAnalytics", "adAnalytics.analytics", self.analytics),
        ]

    # -- errors in LinkedIn's shape ----------------------------------------------------------------------------

    def account(self, token: str | None):  # type: ignore[override]
        return None if token in self.expired_tokens else super().account(token)

    def expire_token(self, token: str) -> None:
        """The member's access token expires (LinkedIn's tokens live 60 days): every call answers 401."""
        self.expired_tokens.add(token)

    def unauthenticated(self) -> Response:
        return Response.json({"status": 401, "serviceErrorCode": 65601, "code": "EXPIRED_ACCESS_TOKEN",
                              "message": "The token used in the request has expired"}, 401)

    def rate_limited(self) -> Response:
        return Response.json({"status": 429, "serviceErrorCode": 101, "code": "TOO_MANY_REQUESTS",
                              "message": "Resource level throttle APPLICATION DAY limit for calls to this resource "
                                         "is reached."}, 429)

    def unavailable(self, status: int) -> Response:
        return Response.json({"status": status, "code": "INTERNAL_SERVER_ERROR",
                              "message": "Internal Server Error"}, status)

    def not_found(self, request: Request) -> Response:
        return Response.json({"status": 404, "code": "RESOURCE_NOT_FOUND",
                              "message": f"No virtual resource found for {request.path}"}, 404)

    # -- what every versioned call checks ----------------------------------------------------------------------

    def versioned(self, request: Request) -> Request:
        version = request.headers.get("linkedin-version")
        if not version:
            raise error(400, "VERSION_MISSING", "A version must be present. Please specify a version by adding the "
                                                "LinkedIn-Version header.")
        if version not in ACTIVE_VERSIONS:
            raise error(426, "NONEXISTENT_VERSION", f"Requested version {version} is not active")
        if request.headers.get("x-restli-protocol-version") != "2.0.0":
            raise error(400, "ILLEGAL_ARGUMENT", "This endpoint requires the header X-Restli-Protocol-Version: 2.0.0")
        with self._count_lock:
            self.queries.append((request.endpoint, request.raw_query))
        try:
            request.query = restli.split_query(request.raw_query)
        except restli.RestliError as exc:
            raise error(400, "ILLEGAL_ARGUMENT", str(exc)) from None
        return request

    def param(self, request: Request, name: str, required: bool = False) -> str | None:
        values = request.query.get(name, [])
        if len(values) > 1:
            raise error(400, "ILLEGAL_ARGUMENT", f"query parameter {name!r} given more than once")
        if not values:
            if required:
                raise error(400, "ILLEGAL_ARGUMENT", f"query parameter {name!r} is required")
            return None
        try:
            return restli.leaf(values[0], name)
        except restli.RestliError as exc:
            raise error(400, "ILLEGAL_ARGUMENT", str(exc)) from None

    def readable(self, request: Request, account_id: str) -> AdAccount:
        """The ad account of the path, if the token's member has a role on it (403 otherwise)."""
        if not account_id.isdigit() or int(account_id) not in self.data.accounts:
            raise error(404, "NOT_FOUND", f"Ad account {account_id} does not exist")
        if int(account_id) not in request.account.account_ids:  # type: ignore[union-attr]
            raise error(403, "ACCESS_DENIED", "Not enough permissions to access: adAccounts")
        return self.data.accounts[int(account_id)]

    # -- search finders, paged by cursor -----------------------------------------------------------------------

    def page(self, request: Request, finder: str, elements: list[dict]) -> Response:
        if self.param(request, "q", required=True) != finder:
            raise error(400, "ILLEGAL_ARGUMENT", f"unsupported finder; this resource supports q={finder}")
        if "start" in request.query or "count" in request.query:
            raise error(400, "ILLEGAL_ARGUMENT", "Index based pagination (start, count) is not supported; page with "
                                                 "pageSize and pageToken")
        size_text = self.param(request, "pageSize") or str(DEFAULT_PAGE_SIZE)
        if not size_text.isdigit() or not 1 <= int(size_text) <= MAX_PAGE_SIZE:
            raise error(400, "ILLEGAL_ARGUMENT", f"pageSize must be between 1 and {MAX_PAGE_SIZE}")
        size, offset = int(size_text), 0
        token = self.param(request, "pageToken")
        if token is not None:
            state = decode_cursor(token)
            if not state or state.get("path") != request.path or not isinstance(state.get("offset"), int):
                raise error(400, "ILLEGAL_ARGUMENT", "Invalid pageToken")
            offset = state["offset"]
        chunk = elements[offset:offset + size]
        metadata = {}
        if offset + size < len(elements):
            metadata["nextPageToken"] = encode_cursor({"path": request.path, "offset": offset + size})
        return Response.json({"elements": chunk, "metadata": metadata,
                              "paging": {"start": 0, "count": size, "links": []}})

    def ad_accounts(self, request: Request) -> Response:
        member = request.account
        elements = [{
            "id": account.id, "name": account.name, "currency": account.currency, "status": "ACTIVE",
            "type": "BUSINESS", "test": False, "reference": urn("organization", 2_000_000 + account.id % 1000),
            "notifiedOnCampaignOptimization": False, "servingStatuses": ["RUNNABLE"],
        } for account in (self.data.accounts[i] for i in sorted(member.account_ids))]  # type: ignore[union-attr]
        return self.page(request, "search", elements)

    def campaign_groups(self, request: Request) -> Response:
        account = self.readable(request, request.params["account"])
        elements = [{
            "id": g.id, "account": urn("sponsoredAccount", account.id), "name": g.name, "status": g.status,
            "test": False, "servingStatuses": ["RUNNABLE"],
            "runSchedule": {"start": millis(dt.datetime.combine(g.start, dt.time(), dt.timezone.utc))},
        } for g in sorted(account.groups, key=lambda g: g.id)]
        return self.page(request, "search", elements)

    def campaigns(self, request: Request) -> Response:
        account = self.readable(request, request.params["account"])
        elements = [{
            "id": c.id, "account": urn("sponsoredAccount", account.id),
            "campaignGroup": urn("sponsoredCampaignGroup", c.group_id), "name": c.name, "status": c.status,
            "type": "SPONSORED_UPDATES", "costType": "CPM", "objectiveType": "WEBSITE_VISIT", "test": False,
            "dailyBudget": {"amount": str(c.daily_budget.quantize(Decimal("0.01"))), "currencyCode": account.currency},
            "runSchedule": {"start": millis(dt.datetime.combine(c.start, dt.time(), dt.timezone.utc))},
            "changeAuditStamps": {"created": {"time": millis(dt.datetime.combine(c.start, dt.time(), dt.timezone.utc))},
                                  "lastModified": {"time": millis(c.last_modified)}},
        } for c in sorted(account.campaigns, key=lambda c: c.id)]
        return self.page(request, "search", elements)

    def creatives(self, request: Request) -> Response:
        account = self.readable(request, request.params["account"])
        elements = [{
            "id": urn("sponsoredCreative", c.id), "account": urn("sponsoredAccount", account.id),
            "campaign": urn("sponsoredCampaign", c.campaign_id), "name": c.name, "intendedStatus": c.intended_status,
            "isServing": c.intended_status == "ACTIVE", "createdAt": millis(c.created),
            "lastModifiedAt": millis(c.created),
        } for c in sorted(account.creatives, key=lambda c: c.id)]
        return self.page(request, "criteria", elements)

    # -- adAnalytics ---------------------------------------------------------------------------------------------

    def analytics(self, request: Request) -> Response:
        if self.param(request, "q", required=True) != "analytics":
            raise error(400, "ILLEGAL_ARGUMENT", "this sandbox serves the analytics finder (q=analytics) only")
        for name in ("start", "count", "pageToken", "pageSize"):
            if name in request.query:
                raise error(400, "ILLEGAL_ARGUMENT", "Setting a paging start value is not permitted: adAnalytics "
                                                     "does not support pagination")
        pivot = self.param(request, "pivot", required=True)
        if pivot not in PIVOTS:
            raise error(400, "ILLEGAL_ARGUMENT", f"pivot {pivot!r} is not served: the sandbox has campaign "
                                                 f"analytics only ({', '.join(PIVOTS)}), no member data")
        granularity = self.param(request, "timeGranularity", required=True)
        if granularity not in ("DAILY", "ALL"):
            raise error(400, "ILLEGAL_ARGUMENT", "timeGranularity must be DAILY or ALL in the sandbox")
        fields = self._fields(request)
        raw_range = request.query.get("dateRange", [])
        if len(raw_range) != 1:
            raise error(400, "ILLEGAL_ARGUMENT", "query parameter 'dateRange' is required once")
        try:
            start, end = restli.date_range(raw_range[0])
            facets = {name: set(restli.urn_list(request.query[name][0], name, kind))
                      for name, kind in FACETS.items() if name in request.query}
        except restli.RestliError as exc:
            raise error(400, "ILLEGAL_ARGUMENT", str(exc)) from None
        if not facets:
            raise error(400, "ILLEGAL_ARGUMENT", "at least one facet (accounts, campaignGroups, campaigns, creatives) "
                                                 "is required")
        elements = self._report(request, pivot, granularity, start, end, facets, fields)
        return Response.json({"elements": elements[: self.max_analytics_elements],
                              "paging": {"start": 0, "count": 10, "links": []}})

    def _fields(self, request: Request) -> list[str]:
        raw = request.query.get("fields", [])
        if not raw:
            return ["impressions", "clicks"]
        # A projection: comma-separated field names (the commas are syntax, the names plain words).
        names = [restli.leaf(part, "fields") if part else "" for part in raw[0].split(",")]
        unknown = [n for n in names if n not in METRICS and n not in STRUCTURE_FIELDS]
        if unknown:
            raise error(400, "ILLEGAL_ARGUMENT", f"unknown or unsupported field(s) in 'fields': {unknown}")
        if len([n for n in names if n in METRICS]) > MAX_FIELDS:
            raise error(400, "ILLEGAL_ARGUMENT", f"at most {MAX_FIELDS} metrics per request")
        return names

    def _report(self, request: Request, pivot: str, granularity: str, start: dt.date, end: dt.date | None,
                facets: dict[str, set[int]], fields: list[str]) -> list[dict]:
        member_accounts = set(request.account.account_ids)  # type: ignore[union-attr]
        buckets: dict[tuple[str, dt.date, dt.date], Metrics] = {}
        for account in (self.data.accounts[i] for i in sorted(member_accounts)):
            days = self.data.days(account, start, end)
            if not days:
                continue
            groups = {c.id: c.group_id for c in account.campaigns}
            for creative in account.creatives:
                keys = {"accounts": account.id, "campaignGroups": groups[creative.campaign_id],
                        "campaigns": creative.campaign_id, "creatives": creative.id}
                if any(keys[name] not in ids for name, ids in facets.items()):
                    continue
                value = {"ACCOUNT": urn("sponsoredAccount", account.id),
                         "CAMPAIGN_GROUP": urn("sponsoredCampaignGroup", keys["campaignGroups"]),
                         "CAMPAIGN": urn("sponsoredCampaign", creative.campaign_id),
                         "CREATIVE": urn("sponsoredCreative", creative.id)}[pivot]
                for day in days:
                    metrics = self.data.creative_day(creative, day)
                    if metrics is None:
                        continue
                    span = (day, day) if granularity == "DAILY" else (start, days[-1])
                    key = (value, *span)
                    buckets[key] = buckets.get(key, ZERO) + metrics
        elements = []
        for (value, first, last), metrics in sorted(buckets.items(), key=lambda kv: (kv[0][1], kv[0][0])):
            element: dict = {name: METRICS[name](metrics) for name in fields if name in METRICS}
            if "pivotValues" in fields:
                element["pivotValues"] = [value]
            if "dateRange" in fields:
                element["dateRange"] = {"start": _ymd(first), "end": _ymd(last)}
            elements.append(element)
        return elements


def _ymd(day: dt.date) -> dict[str, int]:
    return {"year": day.year, "month": day.month, "day": day.day}
