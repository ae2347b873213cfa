"""The LinkedIn Ads dlt source for one connection: ad accounts, campaign groups, campaigns and creatives
(merged on id), and daily analytics by campaign and by creative (merged on id and day).

Every run reads all entities again (an account holds at most 5,000 campaigns and 15,000 creatives: a few
pages), so renamed, paused and removed ones (LinkedIn keeps them with status REMOVED) are current. Analytics
are read from where the last run ended, less the lookback window (`settings.LOOKBACK_DAYS`): conversions
LinkedIn attributes to earlier days are merged over the figures held, and days outside the window stay as
they were. A run reads up to the day after today in UTC, so accounts east of UTC get their local today too;
LinkedIn reports each day as the ad account's day.

Campaign analytics only: LinkedIn's terms forbid using member data to enrich a CRM, so this source never asks
for a member-level or demographic pivot (see `settings`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cached_property
from typing import Any

import dlt
from dlt.extract.resource import DltResource

from pipelines.connections.report import SyncReport
from pipelines.linkedin_ads import settings
from pipelines.linkedin_ads.client import LinkedInClient, LinkedInError, urn_id


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


@dataclass
class AdsSync:
    """What one connection's sync needs. `state` holds the cursors (`analytics_end` per ad account, ISO day);
    the source writes the new ones there and the caller saves them once dlt has loaded. `known` holds the keys
    the warehouse already has per table (to count inserted against updated rows)."""

    connection_id: str
    workspace_id: str
    access_token: str
    report: SyncReport
    base_url: str = settings.API_BASE_URL
    state: dict[str, Any] = field(default_factory=dict)
    known: dict[str, set[tuple]] = field(default_factory=dict)
    now: Callable[[], dt.datetime] = _utc_now
    max_elements: int = settings.ANALYTICS_MAX_ELEMENTS

    def __post_init__(self) -> None:
        # The windows come from the cursors as the run found them, whatever the run writes meanwhile.
        self.previous_ends: dict[str, str] = dict(self.state.get("analytics_end", {}))

    @cached_property
    def client(self) -> LinkedInClient:
        return LinkedInClient(self.access_token, self.report, self.base_url)

    @cached_property
    def synced_at(self) -> dt.datetime:
        return self.now()

    # -- entities, read once per run ---------------------------------------------------------------------------

    @cached_property
    def accounts(self) -> list[dict[str, Any]]:
        return self.client.accounts()

    @cached_property
    def campaign_groups(self) -> dict[int, list[dict[str, Any]]]:
        return {a["id"]: list(self.client.search(f"adAccounts/{a['id']}/adCampaignGroups")) for a in self.accounts}

    @cached_property
    def campaigns(self) -> dict[int, list[dict[str, Any]]]:
        return {a["id"]: list(self.client.search(f"adAccounts/{a['id']}/adCampaigns")) for a in self.accounts}

    @cached_property
    def creatives(self) -> dict[int, list[dict[str, Any]]]:
        return {a["id"]: list(self.client.search(f"adAccounts/{a['id']}/creatives", "criteria"))
                for a in self.accounts}

    # -- the analytics window ----------------------------------------------------------------------------------

    def window(self, account_id: int) -> tuple[dt.date, dt.date]:
        """The days to read for an account: from the last run's end less the lookback window (the first run:
        `INITIAL_DAYS` back) to the day after today in UTC."""
        today = self.now().date()
        ended = self.previous_ends.get(str(account_id))
        if ended is None:
            start = today - dt.timedelta(days=settings.INITIAL_DAYS)
        else:
            start = min(dt.date.fromisoformat(ended), today) - dt.timedelta(days=settings.LOOKBACK_DAYS)
        return start, today + dt.timedelta(days=1)

    def read(self, pivot: str, account_id: int, objects: int, start: dt.date, end: dt.date) -> Iterator[dict]:
        """Every daily element from `start` to `end`, in ranges of at most `max_elements` object-days; a
        response that reaches the cap may have been cut, so its range is read again in halves."""
        span = max(1, self.max_elements // max(1, objects))
        first = start
        while first <= end:
            last = min(end, first + dt.timedelta(days=span - 1))
            yield from self._read_range(pivot, account_id, first, last)
            first = last + dt.timedelta(days=1)

    def _read_range(self, pivot: str, account_id: int, start: dt.date, end: dt.date) -> Iterator[dict]:
        elements = self.client.analytics(pivot, account_id, start, end)
        if len(elements) < self.max_elements:
            yield from elements
            return
        if start == end:
            raise LinkedInError(f"adAnalytics {pivot} of one day reached its {self.max_elements}-element cap")
        middle = start + dt.timedelta(days=(end - start).days // 2)
        yield from self._read_range(pivot, account_id, start, middle)
        yield from self._read_range(pivot, account_id, middle + dt.timedelta(days=1), end)

    # -- rows --------------------------------------------------------------------------------------------------

    def row(self, table: str, key: tuple, values: dict[str, Any]) -> dict[str, Any]:
        """A row of `table` with the connection's columns, counted as inserted or updated."""
        counts = self.report.stream(table)
        if key in self.known.get(table, set()):
            counts.updated += 1
        else:
            counts.inserted += 1
        return {"connection_id": self.connection_id, "workspace_id": self.workspace_id, **values,
                "synced_at": self.synced_at}


def _millis(value: int | None) -> dt.datetime | None:
    return dt.datetime.fromtimestamp(value / 1000, dt.timezone.utc) if value is not None else None


def _amount(value: str | None) -> Decimal:
    return Decimal(value) if value is not None else Decimal(0)


def _accounts(sync: AdsSync) -> Iterator[dict]:
    for a in sync.accounts:
        yield sync.row(settings.ACCOUNTS, (a["id"],), {
            "account_id": a["id"], "name": a.get("name"), "currency": a["currency"], "status": a.get("status"),
            "type": a.get("type"), "test": a.get("test")})


def _campaign_groups(sync: AdsSync) -> Iterator[dict]:
    for account_id, groups in sync.campaign_groups.items():
        for g in groups:
            yield sync.row(settings.CAMPAIGN_GROUPS, (g["id"],), {
                "campaign_group_id": g["id"], "account_id": account_id, "name": g.get("name"),
                "status": g.get("status"), "run_start_at": _millis(g.get("runSchedule", {}).get("start"))})


def _campaigns(sync: AdsSync) -> Iterator[dict]:
    for account_id, campaigns in sync.campaigns.items():
        for c in campaigns:
            budget = c.get("dailyBudget") or {}
            stamps = c.get("changeAuditStamps") or {}
            yield sync.row(settings.CAMPAIGNS, (c["id"],), {
                "campaign_id": c["id"], "account_id": account_id,
                "campaign_group_id": urn_id(c["campaignGroup"]) if c.get("campaignGroup") else None,
                "name": c.get("name"), "status": c.get("status"), "type": c.get("type"),
                "cost_type": c.get("costType"), "objective_type": c.get("objectiveType"),
                "daily_budget": Decimal(budget["amount"]) if "amount" in budget else None,
                "daily_budget_currency": budget.get("currencyCode"),
                "run_start_at": _millis(c.get("runSchedule", {}).get("start")),
                "created_at": _millis(stamps.get("created", {}).get("time")),
                "last_modified_at": _millis(stamps.get("lastModified", {}).get("time"))})


def _creatives(sync: AdsSync) -> Iterator[dict]:
    for account_id, creatives in sync.creatives.items():
        for c in creatives:
            creative_id = urn_id(c["id"])
            yield sync.row(settings.CREATIVES, (creative_id,), {
                "creative_id": creative_id, "account_id": account_id,
                "campaign_id": urn_id(c["campaign"]) if c.get("campaign") else None, "name": c.get("name"),
                "intended_status": c.get("intendedStatus"), "is_serving": c.get("isServing"),
                "created_at": _millis(c.get("createdAt")), "last_modified_at": _millis(c.get("lastModifiedAt"))})


def _metrics(element: dict) -> dict[str, Any]:
    return {
        "impressions": element.get("impressions", 0), "clicks": element.get("clicks", 0),
        "landing_page_clicks": element.get("landingPageClicks", 0),
        "cost_in_local_currency": _amount(element.get("costInLocalCurrency")),
        "external_website_conversions": element.get("externalWebsiteConversions", 0),
        "conversion_value_in_local_currency": _amount(element.get("conversionValueInLocalCurrency")),
    }


def _analytics(sync: AdsSync, pivot: str) -> Iterator[dict]:
    """One account after another: its window's daily figures at `pivot` (CAMPAIGN or CREATIVE)."""
    table = settings.CAMPAIGN_ANALYTICS if pivot == "CAMPAIGN" else settings.CREATIVE_ANALYTICS
    key = "campaign_id" if pivot == "CAMPAIGN" else "creative_id"
    ends = sync.state.setdefault("analytics_end", {})
    for account in sync.accounts:
        account_id = account["id"]
        start, end = sync.window(account_id)
        campaign_of = {urn_id(c["id"]): urn_id(c["campaign"]) for c in sync.creatives[account_id]}
        ids = {c["id"] for c in sync.campaigns[account_id]} if pivot == "CAMPAIGN" else set(campaign_of)
        seen: set[tuple] = set()
        for element in sync.read(pivot, account_id, len(ids), start, end):
            object_id = urn_id(element["pivotValues"][0])
            day = dt.date(**element["dateRange"]["start"])
            values = {key: object_id, "date_day": day, "account_id": account_id, **_metrics(element)}
            if pivot == "CREATIVE":
                values["campaign_id"] = campaign_of.get(object_id)
            seen.add((object_id, day))
            yield sync.row(table, (object_id, day), values)
        yield from _withdrawn(sync, table, key, account_id, ids, (start, end), seen)
        ends[str(account_id)] = end.isoformat()


def _withdrawn(sync: AdsSync, table: str, key: str, account_id: int, ids: set[int],
               window: tuple[dt.date, dt.date], seen: set[tuple]) -> Iterator[dict]:
    """Deletion markers for the account's held days inside the window that LinkedIn no longer reports."""
    for object_id, day in sorted(sync.known.get(table, set()) - seen):
        if object_id in ids and window[0] <= day <= window[1]:
            sync.report.stream(table).deleted += 1
            yield {"connection_id": sync.connection_id, "workspace_id": sync.workspace_id, key: object_id,
                   "date_day": day, "account_id": account_id, **_metrics({}), "synced_at": sync.synced_at,
                   settings.WITHDRAWN: True}


_STREAMS: tuple[tuple[str, Callable[[AdsSync], Iterator[dict]]], ...] = (
    (settings.ACCOUNTS, _accounts),
    (settings.CAMPAIGN_GROUPS, _campaign_groups),
    (settings.CAMPAIGNS, _campaigns),
    (settings.CREATIVES, _creatives),
    (settings.CAMPAIGN_ANALYTICS, lambda sync: _analytics(sync, "CAMPAIGN")),
    (settings.CREATIVE_ANALYTICS, lambda sync: _analytics(sync, "CREATIVE")),
)


@dlt.source(name=settings.SOURCE_NAME, max_table_nesting=0)
def linkedin_ads_source(sync: AdsSync | None) -> list[DltResource]:
    """The six tables of one connection (`sync=None` builds the resources without reading anything: what the
    Dagster asset definitions need)."""

    def resource(table: str, rows: Callable[[AdsSync], Iterator[dict]]) -> DltResource:
        columns = settings.TABLES[table]
        keys = [name for name, column in columns.items() if column.get("primary_key")]

        def generate() -> Iterator[dict]:
            if sync is not None:
                yield from rows(sync)

        return dlt.resource(generate, name=table, write_disposition="merge", primary_key=keys, columns=columns)

    return [resource(table, rows) for table, rows in _STREAMS]
