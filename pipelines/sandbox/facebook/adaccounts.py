"""The seeded world the Graph API sandbox serves: ad accounts with their structure, daily ad insights and leads.

Why it exists: the Meta source is only as good as what it is tested against. Each `AdAccount` has its own
time zone and currency (one in JPY, which has no minor unit; one west of UTC), campaigns / ad sets / ads /
creatives in every `effective_status` the source must keep (ACTIVE, PAUSED, ARCHIVED, DELETED), one insights
row per ad and day in the account's time zone with actions and action values per attribution window, and
lead forms with leads. Everything derives from the seed, so two builds are equal; tests then change the
world between syncs (`late_conversions`, `delete_campaign`, `pause_campaign`, `rename_ad`, `add_ad`,
`add_leads`) and compare what the source loaded with what "Ads Manager" (`ads_manager`) says.

The clock (`World.now`, UTC) decides each account's "today" in its own time zone: insights exist up to and
including that day, which is how the west-of-UTC day boundary is tested.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass, field
from decimal import Decimal
from zoneinfo import ZoneInfo

__all__ = [
    "ACTION_TYPES", "AdAccount", "AdObject", "InsightDay", "Lead", "LeadForm", "World", "WINDOWS", "build_world",
]

# Meta's attribution windows, and the default attribution setting whose figure Meta reports as `value`.
WINDOWS = ("1d_click", "7d_click", "28d_click", "1d_view")
DEFAULT_WINDOWS = ("7d_click", "1d_view")
ACTION_TYPES = ("link_click", "lead", "offsite_conversion.fb_pixel_purchase")
VALUED_ACTIONS = ("offsite_conversion.fb_pixel_purchase",)
LATE_DAYS = 28  # conversions keep arriving for this many days (the longest attribution window)
HISTORY_MONTHS = 37  # the furthest back Meta serves insights

_ACCOUNTS = (  # (name, currency, time zone)
    ("Acme West", "USD", "America/Los_Angeles"),
    ("Acme Tokyo", "JPY", "Asia/Tokyo"),
    ("Acme Berlin", "EUR", "Europe/Berlin"),
)
_FIRST_NAMES = ("Ana", "Ben", "Chloé", "Dev", "Eun-ji", "Farah", "Gus", "Hana", "Ivo", "Jude")
_LAST_NAMES = ("Okafor", "Lindqvist", "Tanaka", "Müller", "García", "Novak", "Singh", "O'Brien")
_BUDGETS = ("under 1k", "1k to 10k", "over 10k — call me after 6pm", "not sure yet")


def _time(value: dt.datetime) -> str:
    """Graph API time format: 2026-11-30T08:15:00+0000."""
    return value.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S+0000")


@dataclass
class AdObject:
    """A campaign, ad set, ad or creative: its Graph fields (as served) and its parent ids."""

    id: str
    kind: str  # campaign | adset | ad | adcreative
    fields: dict[str, object]

    @property
    def status(self) -> str:
        return str(self.fields.get("effective_status", "ACTIVE"))


@dataclass
class InsightDay:
    """One ad's figures on one day (the account's time zone). Counts per attribution window per action type;
    values in the account currency's major unit."""

    impressions: int
    reach: int
    clicks: int
    spend: Decimal
    actions: dict[str, dict[str, int]]
    action_values: dict[str, dict[str, Decimal]]


@dataclass
class LeadForm:
    id: str
    name: str
    page_id: str
    questions: tuple[str, ...]
    status: str = "ACTIVE"
    created_time: str = ""


@dataclass
class Lead:
    id: str
    form_id: str
    ad_id: str
    created: dt.datetime
    answers: dict[str, str]  # question key -> answer, as filled in

    def field_data(self) -> list[dict[str, object]]:
        return [{"name": name, "values": [value]} for name, value in self.answers.items()]


@dataclass
class AdAccount:
    """One ad account (`act_<account_id>`), reached with its own access token."""

    account_id: str
    name: str
    currency: str
    timezone_name: str
    token: str
    world: World
    page_id: str
    objects: dict[str, AdObject] = field(default_factory=dict)
    insights: dict[tuple[str, dt.date], InsightDay] = field(default_factory=dict)
    forms: dict[str, LeadForm] = field(default_factory=dict)
    leads: dict[str, Lead] = field(default_factory=dict)
    first_day: dt.date | None = None

    @property
    def id(self) -> str:
        return f"act_{self.account_id}"

    @property
    def owner_user_id(self) -> str:
        """The app-scoped id of the Facebook user whose token reaches the account (who connected it to GTG)."""
        return f"10{int(self.account_id):013d}"

    @property
    def minor_digits(self) -> int:
        """Digits after the decimal point of the currency (JPY has none)."""
        return 0 if self.currency in ("JPY", "KRW", "VND", "CLP", "ISK", "HUF", "TWD") else 2

    def today(self) -> dt.date:
        """The current day in the account's time zone."""
        return self.world.now.astimezone(ZoneInfo(self.timezone_name)).date()

    def of_kind(self, kind: str) -> list[AdObject]:
        return [o for o in self.objects.values() if o.kind == kind]

    def graph_fields(self) -> dict[str, object]:
        offset = self.world.now.astimezone(ZoneInfo(self.timezone_name)).utcoffset() or dt.timedelta()
        return {"id": self.id, "account_id": self.account_id, "name": self.name, "currency": self.currency,
                "timezone_name": self.timezone_name, "timezone_offset_hours_utc": offset.total_seconds() / 3600,
                "account_status": 1, "business_country_code": "US"}

    # -- what tests change between syncs ---------------------------------------------------------------------

    def late_conversions(self, seed: int) -> int:
        """Conversions arriving late: within the last 28 days, some ad-days gain purchases (and their value)
        and a click or two. Returns how many ad-days changed; older days never change."""
        rng = random.Random(f"late:{seed}:{self.id}")
        start = self.today() - dt.timedelta(days=LATE_DAYS - 1)
        changed = 0
        for (ad_id, day), row in sorted(self.insights.items()):
            if day < start or rng.random() > 0.4:
                continue
            extra = rng.randint(1, 3)
            purchases = row.actions.setdefault("offsite_conversion.fb_pixel_purchase", dict.fromkeys(WINDOWS, 0))
            purchases["7d_click"] += extra
            purchases["28d_click"] += extra
            price = Decimal(rng.randint(2000, 9000)) * (1 if self.minor_digits == 0 else Decimal("0.01"))
            values = row.action_values.setdefault("offsite_conversion.fb_pixel_purchase",
                                                  dict.fromkeys(WINDOWS, Decimal(0)))
            values["7d_click"] += price * extra
            values["28d_click"] += price * extra
            row.clicks += 1
            changed += 1
        return changed

    def delete_campaign(self, campaign_id: str) -> None:
        """Delete a campaign: it and everything under it turn DELETED (Graph keeps serving them), each with a
        new `updated_time`."""
        for obj in self.objects.values():
            if obj.id == campaign_id or obj.fields.get("campaign_id") == campaign_id:
                if obj.id == campaign_id:
                    obj.fields["status"] = "DELETED"
                obj.fields.update(effective_status="DELETED", updated_time=_time(self.world.now))

    def pause_campaign(self, campaign_id: str) -> None:
        """Pause a campaign: its own `updated_time` moves; its ad sets and ads turn CAMPAIGN_PAUSED without
        theirs moving (their own settings did not change), as at Meta: an `updated_time` filter misses them."""
        self.objects[campaign_id].fields.update(status="PAUSED", effective_status="PAUSED",
                                                updated_time=_time(self.world.now))
        for obj in self.objects.values():
            if obj.fields.get("campaign_id") == campaign_id and obj.status == "ACTIVE":
                obj.fields["effective_status"] = "CAMPAIGN_PAUSED"

    def rename_ad(self, ad_id: str, name: str) -> None:
        self.objects[ad_id].fields.update(name=name, updated_time=_time(self.world.now))

    def add_ad(self, adset_id: str, name: str) -> AdObject:
        """A new ACTIVE ad (with its own new creative) in an ad set, created now."""
        adset = self.objects[adset_id].fields
        number = 1 + sum(1 for o in self.of_kind("ad") if o.fields["adset_id"] == adset_id)
        ad_id, created = f"{adset_id[:-2]}{number:02d}", _time(self.world.now)
        creative = f"7{ad_id}"
        self.objects[creative] = AdObject(creative, "adcreative", {
            "id": creative, "account_id": self.account_id, "name": f"Creative {ad_id}", "title": name,
            "body": "Try GTG free for 30 days", "object_type": "SHARE", "status": "ACTIVE",
            "call_to_action_type": "SIGN_UP"})
        self.objects[ad_id] = AdObject(ad_id, "ad", {
            "id": ad_id, "account_id": self.account_id, "campaign_id": adset["campaign_id"], "adset_id": adset_id,
            "name": name, "status": "ACTIVE", "effective_status": "ACTIVE", "creative": {"id": creative},
            "created_time": created, "updated_time": created})
        return self.objects[ad_id]

    def add_leads(self, count: int, seed: int, at: dt.datetime | None = None) -> list[Lead]:
        """New leads (created at `at`, default now) spread over the account's forms."""
        rng = random.Random(f"leads:{seed}:{self.id}")
        forms = sorted(self.forms.values(), key=lambda f: f.id)
        ads = sorted(o.id for o in self.of_kind("ad"))
        made = []
        for _ in range(count):
            number = len(self.leads) + 1
            form = forms[number % len(forms)]
            first, last = rng.choice(_FIRST_NAMES), rng.choice(_LAST_NAMES)
            answers = {"email": f"{first.lower()}.{last.lower().replace(chr(39), '')}{number}@{self.account_id}.example",
                       "full_name": f"{first} {last}", "phone_number": f"+1555{int(self.account_id) % 1000:03d}{number:04d}"}
            for question in form.questions:
                answers[question] = rng.choice(_BUDGETS)
            created = (at or self.world.now) - dt.timedelta(seconds=count - len(made))
            lead = Lead(f"{self.account_id}{number:06d}", form.id, ads[number % len(ads)], created, answers)
            self.leads[lead.id] = lead
            made.append(lead)
        return made

    def erase_lead_data(self) -> None:
        """Forget every lead (what Meta does after 90 days): the source must keep what it already synced."""
        self.leads.clear()

    # -- Ads Manager: what the account's owner sees ------------------------------------------------------------

    def ads_manager(self, window: str = "value") -> dict[tuple[str, dt.date], dict[str, object]]:
        """Per ad and day: impressions, clicks, spend, purchases and purchase value under `window` ("value" is
        the default attribution setting, 7-day click or 1-day view)."""
        out = {}
        for key, row in self.insights.items():
            purchases = row.actions.get("offsite_conversion.fb_pixel_purchase", {})
            values = row.action_values.get("offsite_conversion.fb_pixel_purchase", {})
            out[key] = {"impressions": row.impressions, "clicks": row.clicks, "spend": row.spend,
                        "conversions": _windowed(purchases, window), "conversions_value": _windowed(values, window)}
        return out


def _windowed(per_window: dict, window: str):
    if window == "value":
        return sum((per_window.get(w, 0) for w in DEFAULT_WINDOWS), type(next(iter(per_window.values()), 0))())
    return per_window.get(window, 0)


@dataclass
class World:
    """Every ad account of the sandbox and the clock they share."""

    now: dt.datetime
    accounts: list[AdAccount] = field(default_factory=list)
    report_polls: int = 2  # polls of an async report run before it completes

    def account(self, account_id: str) -> AdAccount | None:
        wanted = account_id.removeprefix("act_")
        return next((a for a in self.accounts if a.account_id == wanted), None)

    def owner(self, object_id: str) -> AdAccount | None:
        """The account holding a campaign, ad set, ad, creative, page, form or lead."""
        for account in self.accounts:
            if object_id in account.objects or object_id in account.forms or object_id in account.leads \
                    or object_id == account.page_id:
                return account
        return None


def build_world(seed: int = 7, *, campaigns: int = 3, adsets: int = 2, ads: int = 2, days: int = 40,
                leads: int = 12, now: dt.datetime | None = None, accounts: int = len(_ACCOUNTS)) -> World:
    """The seeded world: `accounts` ad accounts, each with `campaigns` x `adsets` x `ads` ads (one creative
    each) and `days` days of insights up to its today, two lead forms and `leads` leads."""
    now = now or dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    world = World(now=now)
    for index in range(accounts):
        name, currency, tz = _ACCOUNTS[index % len(_ACCOUNTS)]
        account_id = str(1001 + index)
        account = AdAccount(account_id, name if index < len(_ACCOUNTS) else f"{name} {index}", currency, tz,
                            token=f"fb-sandbox-token-{seed}-{account_id}", world=world, page_id=f"9{account_id}")
        _structure(account, random.Random(f"{seed}:{account_id}"), campaigns, adsets, ads)
        _insights(account, seed, days)
        _forms(account)
        account.add_leads(leads, seed, at=now - dt.timedelta(days=3))
        world.accounts.append(account)
    return world


_STATUSES = ("ACTIVE", "PAUSED", "ARCHIVED")


def _structure(account: AdAccount, rng: random.Random, campaigns: int, adsets: int, ads: int) -> None:
    created = _time(account.world.now - dt.timedelta(days=400))
    for c in range(campaigns):
        cid = f"{account.account_id}{c + 1:02d}0000"
        status = _STATUSES[c % len(_STATUSES)]
        account.objects[cid] = AdObject(cid, "campaign", {
            "id": cid, "account_id": account.account_id, "name": f"Campaign {c + 1} ({account.name})",
            "objective": rng.choice(("OUTCOME_SALES", "OUTCOME_LEADS", "OUTCOME_TRAFFIC")), "status": status,
            "effective_status": status, "daily_budget": str(rng.randint(10, 200) * (100 if account.minor_digits else 1)),
            "created_time": created, "updated_time": created, "start_time": created})
        for s in range(adsets):
            sid = f"{cid[:-4]}{s + 1:02d}00"
            set_status = status if status != "ACTIVE" else ("ACTIVE" if s == 0 else "PAUSED")
            account.objects[sid] = AdObject(sid, "adset", {
                "id": sid, "account_id": account.account_id, "campaign_id": cid, "name": f"Ad set {c + 1}.{s + 1}",
                "status": set_status, "effective_status": _inherited(status, set_status),
                "optimization_goal": "OFFSITE_CONVERSIONS",
                "billing_event": "IMPRESSIONS", "created_time": created, "updated_time": created})
            for a in range(ads):
                aid = f"{sid[:-2]}{a + 1:02d}"
                creative = f"7{aid}"
                account.objects[creative] = AdObject(creative, "adcreative", {
                    "id": creative, "account_id": account.account_id, "name": f"Creative {aid}",
                    "title": f"Spring offer {a + 1}", "body": "Try GTG free for 30 days",
                    "object_type": "SHARE", "status": "ACTIVE", "call_to_action_type": "LEARN_MORE"})
                ad_status = set_status if a == 0 else "PAUSED"
                account.objects[aid] = AdObject(aid, "ad", {
                    "id": aid, "account_id": account.account_id, "campaign_id": cid, "adset_id": sid,
                    "name": f"Ad {c + 1}.{s + 1}.{a + 1}", "status": ad_status, "effective_status": ad_status,
                    "creative": {"id": creative}, "created_time": created, "updated_time": created})


def _inherited(parent: str, own: str) -> str:
    """An object's effective status under its parent's (a paused campaign pauses its ad sets)."""
    return {"ACTIVE": own, "PAUSED": "CAMPAIGN_PAUSED"}.get(parent, parent)


def _insights(account: AdAccount, seed: int, days: int) -> None:
    today = account.today()
    account.first_day = today - dt.timedelta(days=days - 1)
    scale = 1 if account.minor_digits == 0 else Decimal("0.01")
    for ad in sorted(account.of_kind("ad"), key=lambda o: o.id):
        for offset in range(days):
            day = account.first_day + dt.timedelta(days=offset)
            rng = random.Random(f"{seed}:{ad.id}:{day.isoformat()}")
            impressions = rng.randint(200, 6000)
            clicks = rng.randint(0, impressions // 25)
            spend = Decimal(rng.randint(150, 60000)) * scale
            actions: dict[str, dict[str, int]] = {}
            values: dict[str, dict[str, Decimal]] = {}
            for action_type in ACTION_TYPES:
                one = rng.randint(0, 6)
                seven = one + rng.randint(0, 3)
                actions[action_type] = {"1d_click": one, "7d_click": seven, "28d_click": seven + rng.randint(0, 2),
                                        "1d_view": rng.randint(0, 2)}
                if action_type in VALUED_ACTIONS:
                    price = Decimal(rng.randint(2000, 9000)) * scale
                    values[action_type] = {w: price * n for w, n in actions[action_type].items()}
            account.insights[(ad.id, day)] = InsightDay(impressions, int(impressions * 0.8), clicks, spend, actions,
                                                        values)


def _forms(account: AdAccount) -> None:
    created = _time(account.world.now - dt.timedelta(days=200))
    for number, questions in ((1, ()), (2, ("what_is_your_budget?",))):
        form_id = f"5{account.account_id}{number:03d}"
        account.forms[form_id] = LeadForm(form_id, f"Lead form {number}", account.page_id, questions,
                                          created_time=created)
