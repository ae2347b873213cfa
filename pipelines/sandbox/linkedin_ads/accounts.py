"""The seeded advertising data the LinkedIn Ads sandbox serves: members (tokens), ad accounts, campaign groups,
campaigns, creatives and each creative's daily performance.

Why it exists: a source is only trustworthy against data whose right answer is known. Everything here is a
pure function of the seed and the clock, so a later process (a second `make run`) sees the same accounts
and figures, and tests compute the expected rows from the same objects the server answers from.

Days are each ad account's own days: an account has a time zone (three are seeded: west of UTC, east of it,
far east), its figures run up to its local today, and today's figures are the elapsed share of the day's,
so they grow between syncs. Tests change the past with `restate` (conversions LinkedIn attributes late),
`withdraw` (a day credited back entirely), `rename_campaign` and `remove_campaign`. Nothing here describes a
member: LinkedIn's member-level and demographic data is exactly what the platform must not sync, so the sandbox
does not even have it.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Callable
from zoneinfo import ZoneInfo

# Per-currency minor units (JPY has none) and a scale that keeps amounts realistic in each currency.
CURRENCY_EXPONENT = {"USD": 2, "EUR": 2, "GBP": 2, "JPY": 0}
CURRENCY_SCALE = {"USD": Decimal(1), "EUR": Decimal("0.92"), "GBP": Decimal("0.79"), "JPY": Decimal(150)}


@dataclass(frozen=True)
class Metrics:
    """One creative's figures for one day, in the account's currency (major units)."""

    impressions: int
    clicks: int
    landing_page_clicks: int
    cost: Decimal
    conversions: int
    conversion_value: Decimal

    def __add__(self, other: Metrics) -> Metrics:
        return Metrics(self.impressions + other.impressions, self.clicks + other.clicks,
                       self.landing_page_clicks + other.landing_page_clicks, self.cost + other.cost,
                       self.conversions + other.conversions, self.conversion_value + other.conversion_value)


ZERO = Metrics(0, 0, 0, Decimal(0), 0, Decimal(0))


@dataclass
class CampaignGroup:
    id: int
    account_id: int
    name: str
    status: str
    start: dt.date


@dataclass
class Campaign:
    id: int
    account_id: int
    group_id: int
    name: str
    status: str
    start: dt.date
    end: dt.date | None  # last day it delivered (a removed campaign stopped)
    daily_budget: Decimal
    last_modified: dt.datetime


@dataclass
class Creative:
    id: int
    account_id: int
    campaign_id: int
    name: str
    intended_status: str
    created: dt.datetime


@dataclass
class AdAccount:
    id: int
    name: str
    currency: str
    time_zone: str
    groups: list[CampaignGroup] = field(default_factory=list)
    campaigns: list[Campaign] = field(default_factory=list)
    creatives: list[Creative] = field(default_factory=list)

    def today(self, now: dt.datetime) -> dt.date:
        return now.astimezone(ZoneInfo(self.time_zone)).date()

    def day_share(self, day: dt.date, now: dt.datetime) -> Decimal:
        """The share of `day` (the account's local day) that has passed at `now`: 0 before, 1 after."""
        local = now.astimezone(ZoneInfo(self.time_zone))
        if day < local.date():
            return Decimal(1)
        if day > local.date():
            return Decimal(0)
        midnight = dt.datetime.combine(day, dt.time(), ZoneInfo(self.time_zone))
        return Decimal((local - midnight).total_seconds() / 86400).quantize(Decimal("0.000001"))


@dataclass
class Member:
    """An authenticated LinkedIn member (an OAuth token) and the ad accounts their role lets them read."""

    token: str
    account_ids: list[int]


@dataclass
class AdsData:
    """Everything the sandbox serves; `now()` is the sandbox's clock (tests fix it)."""

    seed: int
    members: list[Member]
    accounts: dict[int, AdAccount]
    now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.timezone.utc)
    restated: dict[tuple[int, dt.date], dict[str, int | Decimal]] = field(default_factory=dict)
    withdrawn: set[tuple[int, dt.date]] = field(default_factory=set)

    # -- figures -----------------------------------------------------------------------------------------------

    def creative_day(self, creative: Creative, day: dt.date) -> Metrics | None:
        """What `creative` delivered on `day` (None: nothing, which LinkedIn leaves out of a report)."""
        account = self.accounts[creative.account_id]
        campaign = self.campaign(creative.campaign_id)
        share = account.day_share(day, self.now())
        if day < campaign.start or (campaign.end is not None and day > campaign.end) or share == 0 \
                or (creative.id, day) in self.withdrawn:
            return None
        rng = random.Random(f"{self.seed}:{creative.id}:{day.isoformat()}")
        if rng.random() < 0.1:
            return None
        impressions = rng.randint(200, 5000)
        clicks = int(impressions * rng.uniform(0.003, 0.02))
        landing = int(clicks * rng.uniform(0.6, 1.0))
        cpm = Decimal(str(round(rng.uniform(5, 40), 2)))
        conversions = int(clicks * rng.uniform(0, 0.1))
        value_each = Decimal(rng.randint(20, 200))
        scale = CURRENCY_SCALE[account.currency]
        figures: dict[str, int | Decimal] = {
            "impressions": impressions, "clicks": clicks, "landing_page_clicks": landing,
            "cost": impressions * cpm / 1000 * scale, "conversions": conversions,
            "conversion_value": conversions * value_each * scale,
        }
        figures.update(self.restated.get((creative.id, day), {}))
        if share < 1:
            figures = {k: (int(v * share) if isinstance(v, int) else v * share) for k, v in figures.items()}
        exponent = Decimal(1).scaleb(-CURRENCY_EXPONENT[account.currency])
        return Metrics(int(figures["impressions"]), int(figures["clicks"]), int(figures["landing_page_clicks"]),
                       Decimal(figures["cost"]).quantize(exponent, ROUND_HALF_UP), int(figures["conversions"]),
                       Decimal(figures["conversion_value"]).quantize(exponent, ROUND_HALF_UP))

    def days(self, account: AdAccount, start: dt.date, end: dt.date | None) -> list[dt.date]:
        """The account's days from `start` to `end` (open: its local today) that may hold figures."""
        last = min(end, account.today(self.now())) if end else account.today(self.now())
        return [start + dt.timedelta(days=i) for i in range((last - start).days + 1)]

    # -- look-ups ----------------------------------------------------------------------------------------------

    def campaign(self, campaign_id: int) -> Campaign:
        return next(c for a in self.accounts.values() for c in a.campaigns if c.id == campaign_id)

    def creative(self, creative_id: int) -> Creative:
        return next(c for a in self.accounts.values() for c in a.creatives if c.id == creative_id)

    # -- changes tests make between syncs -----------------------------------------------------------------------

    def restate(self, creative_id: int, day: dt.date, **figures: int | Decimal) -> None:
        """Change a past day's figures (LinkedIn attributes conversions days after the click)."""
        self.restated.setdefault((creative_id, day), {}).update(figures)

    def withdraw(self, creative_id: int, day: dt.date) -> None:
        """LinkedIn credits a day's delivery back entirely (invalid clicks): the day leaves its reports."""
        self.withdrawn.add((creative_id, day))

    def rename_campaign(self, campaign_id: int, name: str) -> None:
        campaign = self.campaign(campaign_id)
        campaign.name, campaign.last_modified = name, self.now()

    def remove_campaign(self, campaign_id: int) -> None:
        """LinkedIn keeps a removed campaign fetchable (status REMOVED) with its past performance."""
        campaign = self.campaign(campaign_id)
        campaign.status, campaign.last_modified = "REMOVED", self.now()
        campaign.end = self.now().date() - dt.timedelta(days=1)


# (name, currency, time zone) of the seeded accounts: one west of UTC, one east, one far east without minor units.
ACCOUNT_PLAN = (
    ("Acme US", "USD", "America/Los_Angeles"),
    ("Acme Europe", "EUR", "Europe/Berlin"),
    ("Acme Japan", "JPY", "Asia/Tokyo"),
)
# Which seeded accounts (by index in ACCOUNT_PLAN) each member can read.
MEMBER_PLAN = ((0, 1), (2,))


def build_data(seed: int = 7, *, history_days: int = 60, groups: int = 2, campaigns: int = 2, creatives: int = 2,
               now: Callable[[], dt.datetime] | None = None, account_plan=ACCOUNT_PLAN,
               member_plan=MEMBER_PLAN) -> AdsData:
    """Seeded members and accounts: `groups` campaign groups per account, `campaigns` campaigns per group,
    `creatives` creatives per campaign, delivering from `history_days` before today. Each account's first
    campaign is paused (it stopped delivering 10 days ago); ids are unique across accounts."""
    clock = now or (lambda: dt.datetime.now(dt.timezone.utc))
    rng = random.Random(seed)
    today = clock().date()
    first = today - dt.timedelta(days=history_days)
    created = dt.datetime.combine(first, dt.time(9), dt.timezone.utc)
    accounts: dict[int, AdAccount] = {}
    for a, (name, currency, time_zone) in enumerate(account_plan):
        account = AdAccount(508_000_001 + a, name, currency, time_zone)
        for g in range(groups):
            group = CampaignGroup(610_000_000 + a * 1000 + g, account.id, f"{name} group {g + 1}", "ACTIVE", first)
            account.groups.append(group)
            for c in range(campaigns):
                paused = g == 0 and c == 0
                campaign = Campaign(
                    id=320_000_000 + a * 100_000 + g * 1000 + c, account_id=account.id, group_id=group.id,
                    name=f"{name} campaign {g + 1}.{c + 1}", status="PAUSED" if paused else "ACTIVE",
                    start=first + dt.timedelta(days=rng.randint(0, 5)),
                    end=today - dt.timedelta(days=10) if paused else None,
                    daily_budget=Decimal(rng.choice((50, 100, 250))) * CURRENCY_SCALE[currency],
                    last_modified=created)
                account.campaigns.append(campaign)
                for k in range(creatives):
                    account.creatives.append(Creative(
                        id=910_000_000 + a * 1_000_000 + g * 10_000 + c * 100 + k, account_id=account.id,
                        campaign_id=campaign.id, name=f"{campaign.name} ad {k + 1}", intended_status="ACTIVE",
                        created=created))
        accounts[account.id] = account
    ids = list(accounts)
    members = [Member(f"li-sandbox-token-{seed}-{m}", [ids[i] for i in plan]) for m, plan in enumerate(member_plan)]
    return AdsData(seed, members, accounts, clock)
