"""The sandbox's advertisers: a manager account, its client accounts, their campaigns down to keywords, and
daily metrics that are a pure function of (seed, ad, day, revision).

Why it is shaped like this: the source's correctness rules are about days and revisions, so the data make
them visible. Each client account has its own time zone and currency (a day is the account's local day; "today"
follows the sandbox clock), metrics exist for every day from `history_days` ago up to today (today being
partial, which the source must not load), and conversions of the last `LATE_DAYS` days move whenever a test
calls `attribute_late_conversions()` (Google keeps attributing conversions to the click's day for the conversion
window). Removed entities stay listed with status REMOVED, as the real API returns them unless filtered. Every change
a test makes to campaigns, ad groups, ads or keywords is logged with its instant (`changes`), which the
`change_status` resource serves. Campaign and ad group metrics are sums of their ads' metrics, so every grain
agrees.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import threading
from dataclasses import dataclass, field
from typing import Callable, Iterator
from zoneinfo import ZoneInfo

LATE_DAYS = 21  # days before today whose conversions `attribute_late_conversions` changes
MANAGER_ID = "9990001111"
SUB_MANAGER_ID = "9990002222"

Clock = Callable[[], dt.datetime]


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


@dataclass
class Customer:
    customer_id: str
    name: str
    currency: str
    time_zone: str
    manager: bool = False
    status: str = "ENABLED"
    manager_ids: tuple[str, ...] = ()  # the managers this account is linked under (one account may have several)


@dataclass
class Campaign:
    campaign_id: int
    customer_id: str
    name: str
    status: str
    channel: str
    removed_on: dt.date | None = None  # metrics stop on this (local) day


@dataclass
class AdGroup:
    ad_group_id: int
    campaign_id: int
    customer_id: str
    name: str
    status: str


@dataclass
class Ad:
    ad_id: int
    ad_group_id: int
    campaign_id: int
    customer_id: str
    name: str
    status: str
    type: str = "RESPONSIVE_SEARCH_AD"


@dataclass
class Keyword:
    criterion_id: int
    ad_group_id: int
    campaign_id: int
    customer_id: str
    text: str
    match_type: str
    status: str
    negative: bool = False


@dataclass(frozen=True)
class Change:
    """One change of an entity, as ChangeStatus reports it (the latest per resource within a window)."""

    customer_id: str
    resource_type: str  # ChangeStatusResourceType: CAMPAIGN, AD_GROUP, AD_GROUP_AD, AD_GROUP_CRITERION
    resource_name: str
    status: str  # ChangeStatusOperation: ADDED, CHANGED, REMOVED
    at: dt.datetime  # the instant (aware)


def campaign_name(c: Campaign) -> str:
    return f"customers/{c.customer_id}/campaigns/{c.campaign_id}"


def ad_group_name(g: AdGroup) -> str:
    return f"customers/{g.customer_id}/adGroups/{g.ad_group_id}"


def ad_name(a: Ad) -> str:
    return f"customers/{a.customer_id}/adGroupAds/{a.ad_group_id}~{a.ad_id}"


def keyword_name(k: Keyword) -> str:
    return f"customers/{k.customer_id}/adGroupCriteria/{k.ad_group_id}~{k.criterion_id}"


@dataclass(frozen=True)
class DailyMetrics:
    impressions: int
    clicks: int
    cost_micros: int
    conversions: float
    conversions_value: float
    all_conversions: float


# The three client accounts: three time zones a day apart at most, three currencies (JPY has no minor unit).
CLIENTS: tuple[tuple[str, str, str, str], ...] = (
    ("1000000001", "Sandbox Outdoor US", "USD", "America/Los_Angeles"),
    ("1000000002", "Sandbox Outdoor DE", "EUR", "Europe/Berlin"),
    ("1000000003", "Sandbox Outdoor JP", "JPY", "Asia/Tokyo"),
)
# With `sub_manager=True`: a manager under the manager, linked to a client of its own and to the DE client (which
# is then reachable by two paths, as an agency's shared accounts are).
SUB_MANAGER_CLIENT = ("1000000004", "Sandbox Outdoor AU", "AUD", "Australia/Sydney")


@dataclass
class World:
    """Everything the sandbox serves; tests change it between syncs through the methods below."""

    seed: int = 16
    history_days: int = 60
    clock: Clock = utc_now
    customers: dict[str, Customer] = field(default_factory=dict)
    campaigns: list[Campaign] = field(default_factory=list)
    ad_groups: list[AdGroup] = field(default_factory=list)
    ads: list[Ad] = field(default_factory=list)
    keywords: list[Keyword] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)
    revision: int = 0
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)
    _metrics: dict[tuple[int, dt.date], DailyMetrics | None] = field(default_factory=dict, repr=False)

    # -- time -------------------------------------------------------------------------------------------------

    def today(self, customer_id: str) -> dt.date:
        """Today in the account's time zone, by the sandbox clock."""
        return self.clock().astimezone(ZoneInfo(self.customers[customer_id].time_zone)).date()

    def first_day(self, customer_id: str) -> dt.date:
        return self.today(customer_id) - dt.timedelta(days=self.history_days)

    # -- changes tests make -----------------------------------------------------------------------------------

    def attribute_late_conversions(self) -> None:
        """Conversions of the last LATE_DAYS days (in each account's time zone) change: a later look at them
        differs, as Google's does while it attributes conversions to earlier clicks."""
        with self.lock:
            self.revision += 1
            self._metrics.clear()

    def remove_campaign(self, campaign_id: int) -> Campaign:
        """The advertiser removes a campaign today: listed with status REMOVED from now on, no metrics from today."""
        with self.lock:
            campaign = self._campaign(campaign_id)
            campaign.status = "REMOVED"
            campaign.removed_on = self.today(campaign.customer_id)
            self._metrics.clear()
            self._log(campaign.customer_id, "CAMPAIGN", campaign_name(campaign), "REMOVED")
            return campaign

    def rename_campaign(self, campaign_id: int, name: str) -> Campaign:
        with self.lock:
            campaign = self._campaign(campaign_id)
            campaign.name = name
            self._log(campaign.customer_id, "CAMPAIGN", campaign_name(campaign), "CHANGED")
            return campaign

    def add_campaign(self, customer_id: str, name: str) -> Campaign:
        """A new campaign (no ad groups yet, so no metrics)."""
        with self.lock:
            campaign_id = max(c.campaign_id for c in self.campaigns) + 10_000
            campaign = Campaign(campaign_id, customer_id, name, "ENABLED", "SEARCH")
            self.campaigns.append(campaign)
            self._log(customer_id, "CAMPAIGN", campaign_name(campaign), "ADDED")
            return campaign

    def pause_ad_group(self, ad_group_id: int) -> AdGroup:
        with self.lock:
            group = next(g for g in self.ad_groups if g.ad_group_id == ad_group_id)
            group.status = "PAUSED"
            self._log(group.customer_id, "AD_GROUP", ad_group_name(group), "CHANGED")
            return group

    def remove_keyword(self, criterion_id: int) -> Keyword:
        with self.lock:
            keyword = next(k for k in self.keywords if k.criterion_id == criterion_id)
            keyword.status = "REMOVED"
            self._log(keyword.customer_id, "AD_GROUP_CRITERION", keyword_name(keyword), "REMOVED")
            return keyword

    def _log(self, customer_id: str, resource_type: str, resource_name: str, status: str) -> None:
        self.changes.append(Change(customer_id, resource_type, resource_name, status, self.clock()))

    def latest_changes(self, customer_id: str) -> list[Change]:
        """The account's latest change of each resource, oldest first (ChangeStatus keeps one row per resource;
        the query's window is applied by its conditions)."""
        with self.lock:
            latest = {c.resource_name: c for c in self.changes if c.customer_id == customer_id}
        return sorted(latest.values(), key=lambda c: c.at)

    def clients(self) -> list[Customer]:
        return [c for c in self.customers.values() if not c.manager]

    def descendants(self, customer_id: str) -> dict[str, int]:
        """Every account under `customer_id` (itself at level 0) at its shortest distance, as customer_client
        lists them."""
        levels = {customer_id: 0}
        frontier = [customer_id]
        while frontier:
            parent = frontier.pop(0)
            for child in self.customers.values():
                if parent in child.manager_ids and child.customer_id not in levels:
                    levels[child.customer_id] = levels[parent] + 1
                    frontier.append(child.customer_id)
        return levels

    def ancestors(self, customer_id: str) -> set[str]:
        """The managers above `customer_id`, at any distance (each may be a request's login customer)."""
        found: set[str] = set()
        pending = list(self.customers[customer_id].manager_ids)
        while pending:
            manager = pending.pop()
            if manager not in found:
                found.add(manager)
                pending.extend(self.customers[manager].manager_ids)
        return found

    # -- metrics ----------------------------------------------------------------------------------------------

    def ad_metrics(self, ad: Ad, day: dt.date) -> DailyMetrics | None:
        """The ad's metrics of one local day, None when it served nothing (no row, as in the real reports)."""
        key = (ad.ad_id, day)
        if key not in self._metrics:
            self._metrics[key] = self._ad_metrics(ad, day)
        return self._metrics[key]

    def _ad_metrics(self, ad: Ad, day: dt.date) -> DailyMetrics | None:
        campaign = self._campaign(ad.campaign_id)
        if not self.first_day(ad.customer_id) <= day <= self.today(ad.customer_id):
            return None
        if campaign.removed_on is not None and day >= campaign.removed_on:
            return None
        h = _hash(self.seed, ad.ad_id, day.isoformat())
        impressions = 50 + h % 950
        if h % 11 == 0:
            return None  # a day the ad did not serve
        clicks = impressions * (1 + (h >> 8) % 9) // 100
        currency = self.customers[ad.customer_id].currency
        unit = 1_000_000 if currency == "JPY" else 10_000  # yen are whole; dollars and euros have cents
        per_click = (20 if currency == "JPY" else 8) + (h >> 16) % 40
        cost_micros = clicks * per_click * unit
        conversions = ((h >> 24) % 7) / 2.0
        late = self.today(ad.customer_id) - day < dt.timedelta(days=LATE_DAYS)
        if late and self.revision:
            conversions += self.revision * (1 + ad.ad_id % 3) / 2.0  # later attribution adds conversions
        value_each = 40.0 if currency != "JPY" else 5000.0
        return DailyMetrics(impressions, clicks, cost_micros, conversions, conversions * value_each,
                            conversions + ((h >> 32) % 3))

    def days(self, customer_id: str, start: dt.date | None, end: dt.date | None) -> Iterator[dt.date]:
        day = max(start or dt.date.min, self.first_day(customer_id))
        last = min(end or dt.date.max, self.today(customer_id))
        while day <= last:
            yield day
            day += dt.timedelta(days=1)

    def _campaign(self, campaign_id: int) -> Campaign:
        return self._campaigns_by_id()[campaign_id]

    def _campaigns_by_id(self) -> dict[int, Campaign]:
        return {c.campaign_id: c for c in self.campaigns}


def _hash(*parts: object) -> int:
    return int.from_bytes(hashlib.blake2b("|".join(map(str, parts)).encode(), digest_size=8).digest(), "big")


def build_world(seed: int = 16, *, history_days: int = 60, clock: Clock = utc_now, campaigns: int = 3,
                ad_groups: int = 2, ads: int = 2, keywords: int = 3, sub_manager: bool = False) -> World:
    """The manager with its three clients (and with `sub_manager`, SUB_MANAGER_ID under it with SUB_MANAGER_CLIENT
    and the DE client); per client `campaigns` campaigns (the last one REMOVED `history_days // 2` days ago),
    `ad_groups` ad groups each, `ads` ads and `keywords` keywords per ad group (one ad and one keyword per client
    removed). Ids are deterministic."""
    world = World(seed=seed, history_days=history_days, clock=clock)
    world.customers[MANAGER_ID] = Customer(MANAGER_ID, "Sandbox Agency (manager)", "USD", "America/New_York",
                                           manager=True)
    clients = [(cid, name, currency, tz, (MANAGER_ID,)) for cid, name, currency, tz in CLIENTS]
    if sub_manager:
        world.customers[SUB_MANAGER_ID] = Customer(SUB_MANAGER_ID, "Sandbox Agency EU (sub-manager)", "EUR",
                                                   "Europe/Paris", manager=True, manager_ids=(MANAGER_ID,))
        clients[1] = (*clients[1][:4], (MANAGER_ID, SUB_MANAGER_ID))
        clients.append((*SUB_MANAGER_CLIENT, (SUB_MANAGER_ID,)))
    for n, (cid, name, currency, tz, managers) in enumerate(clients, start=1):
        world.customers[cid] = Customer(cid, name, currency, tz, manager_ids=managers)
        for c in range(1, campaigns + 1):
            campaign_id = n * 1_000_000 + c * 10_000
            removed = c == campaigns and campaigns > 1
            campaign = Campaign(campaign_id, cid, f"{name} campaign {c}", "REMOVED" if removed else "ENABLED",
                                "SEARCH" if c % 2 else "DISPLAY")
            if removed:
                campaign.removed_on = world.today(cid) - dt.timedelta(days=history_days // 2)
            world.campaigns.append(campaign)
            for g in range(1, ad_groups + 1):
                ad_group_id = campaign_id + g * 100
                world.ad_groups.append(AdGroup(ad_group_id, campaign_id, cid, f"campaign {c} ad group {g}",
                                               "PAUSED" if g == ad_groups and g > 1 and c == 1 else "ENABLED"))
                for a in range(1, ads + 1):
                    status = "REMOVED" if (c, g, a) == (1, 1, ads) and ads > 1 else "ENABLED"
                    world.ads.append(Ad(ad_group_id * 10 + a, ad_group_id, campaign_id, cid,
                                        f"ad {c}.{g}.{a}", status))
                for k in range(1, keywords + 1):
                    status = "REMOVED" if (c, g, k) == (1, 1, keywords) and keywords > 1 else "ENABLED"
                    world.keywords.append(Keyword(ad_group_id * 100 + k, ad_group_id, campaign_id, cid,
                                                  f"hiking boots {c}{g}{k}", ("EXACT", "PHRASE", "BROAD")[k % 3],
                                                  status))
    return world
