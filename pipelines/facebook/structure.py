"""The ad account and its structure (campaigns, ad sets, ads, creatives), merged on id.

Every effective status is asked for (a `filtering` condition `<kind>.effective_status IN [all]`): Graph leaves
DELETED and ARCHIVED objects out of a listing unless told to list them, and a deleted campaign must keep its
row with its status (its past spend still counts), not vanish.

Incremental, as Airbyte does: between full listings a table is read with `<kind>.updated_time GREATER_THAN
<cursor>`, the cursor being the newest `updated_time` read (never later than the sync's clock less
`CLOCK_MARGIN`, so an object updated while the listing ran is read again next time rather than skipped).
Creatives have no `updated_time`: between full listings the creatives read are those of the ads listed,
expanded in place (`creative{...}`), so a new or changed ad brings its creative. Some changes do not move an
object's own `updated_time` (pausing a campaign turns its ads CAMPAIGN_PAUSED; a creative's status): the
full listing every `structure_full_days` (first sync included) catches them.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
import warnings
from typing import Any, Callable, Iterator, TypeVar

import pyarrow as pa
from facebook_business.adobjects.ad import Ad
from facebook_business.adobjects.adaccount import AdAccount
from facebook_business.adobjects.adset import AdSet
from facebook_business.adobjects.campaign import Campaign

from pipelines.facebook.client import GraphClient
from pipelines.facebook.settings import (
    ACCOUNT_FIELDS, AD_SETS_TABLE, ADS_TABLE, CAMPAIGNS_TABLE, CREATIVES_TABLE, STRUCTURE_FIELDS, STRUCTURE_PREFIX,
    ZERO_DECIMAL_CURRENCIES, SyncOptions,
)
from pipelines.mail_common.stage import StreamWriter

T = TypeVar("T")
STATE_KEY = "structure"  # table -> {"since": unix time of the newest updated_time read, "full_at": ISO time}
CLOCK_MARGIN = dt.timedelta(minutes=5)
# The SDK's edge reader of each table.
_EDGES = {CAMPAIGNS_TABLE: "get_campaigns", AD_SETS_TABLE: "get_ad_sets", ADS_TABLE: "get_ads",
          CREATIVES_TABLE: "get_ad_creatives"}
# Every effective status an object of each table can have (the SDK's enum of its class).
ALL_STATUSES = {table: sorted(v for k, v in vars(cls.EffectiveStatus).items() if not k.startswith("_"))
                for table, cls in ((CAMPAIGNS_TABLE, Campaign), (AD_SETS_TABLE, AdSet), (ADS_TABLE, Ad))}
_KEYS = {CAMPAIGNS_TABLE: "campaign_id", AD_SETS_TABLE: "adset_id", ADS_TABLE: "ad_id", CREATIVES_TABLE: "creative_id"}


def fetch_account(client: GraphClient, account_id: str) -> dict[str, Any]:
    """The ad account's fields (time zone and currency decide how insights are read)."""
    node = client.call(lambda: AdAccount(f"act_{account_id.removeprefix('act_')}", api=client.api).api_get(
        fields=list(ACCOUNT_FIELDS)))
    data = node.export_all_data()
    return {"account_id": data["account_id"], "name": data.get("name"), "currency": data["currency"],
            "timezone_name": data["timezone_name"],
            "timezone_offset_hours_utc": _float(data.get("timezone_offset_hours_utc")),
            "account_status": _int(data.get("account_status"))}


def sync_structure(writer: StreamWriter, client: GraphClient, account: dict[str, Any], state: dict[str, Any],
                   now: dt.datetime, options: SyncOptions) -> Iterator[pa.Table]:
    """The objects of the writer's table updated since its cursor, or all of them when a full listing is due,
    merged on id; the table's cursor in `state` advances once it is read."""
    table = writer.stream.table
    held = dict((state.get(STATE_KEY) or {}).get(table) or {})
    full_at = dt.datetime.fromisoformat(held["full_at"]) if held.get("full_at") else None
    full = full_at is None or now - full_at >= dt.timedelta(days=options.structure_full_days)
    since = None if full else held.get("since")
    ad_account = AdAccount(f"act_{account['account_id']}", api=client.api)
    newest = since or 0
    if table == CREATIVES_TABLE and since is not None:  # the creatives of the ads updated since
        fields = ["updated_time", f"creative{{{','.join(STRUCTURE_FIELDS[CREATIVES_TABLE])}}}"]
        for page in client.pages(lambda limit: _expanded(lambda: ad_account.get_ads(
                fields=fields, params=listing_params(ADS_TABLE, since, limit)))):
            newest = max([newest, *(_unix(obj.get("updated_time")) for obj in page)])
            creatives = {c["id"]: c for c in (obj.get("creative") for obj in page) if isinstance(c, dict) and "id" in c}
            yield from writer.upsert(structure_record(table, c, account["currency"]) for c in creatives.values())
    else:
        edge = getattr(ad_account, _EDGES[table])
        fields = list(STRUCTURE_FIELDS[table])
        for page in client.pages(lambda limit: edge(fields=fields, params=listing_params(table, since, limit))):
            newest = max([newest, *(_unix(obj.get("updated_time")) for obj in page)])
            yield from writer.upsert(structure_record(table, obj, account["currency"]) for obj in page)
    clock = int((now - CLOCK_MARGIN).timestamp())  # what a listing with nothing dated can vouch for
    cursor = min(newest, clock) if newest else (clock if full else since)
    state.setdefault(STATE_KEY, {})[table] = {"since": cursor, "full_at": (now if full else full_at).isoformat()}
    writer.counts.full_resync = full


def _expanded(listing: Callable[[], T]) -> T:
    """A listing asking for an expanded field (`creative{name}`): Graph's syntax, which the SDK's field check
    does not know and warns about."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".* does not allow field \w+\{", category=UserWarning)
        return listing()


def listing_params(table: str, since: int | None, limit: int) -> dict[str, Any]:
    """Every effective status (creatives have none to filter by), and only what was updated after `since`."""
    prefix = STRUCTURE_PREFIX.get(table)
    filtering = [] if prefix is None else [
        {"field": f"{prefix}.effective_status", "operator": "IN", "value": ALL_STATUSES[table]}]
    if since is not None:
        filtering.append({"field": f"{prefix}.updated_time", "operator": "GREATER_THAN", "value": since})
    return {"limit": limit, **({"filtering": filtering} if filtering else {})}


def _unix(value: str | None) -> int:
    return int(graph_time(value).timestamp()) if value else 0


def structure_record(table: str, obj: dict[str, Any], currency: str) -> dict[str, Any]:
    """A Graph object as a row of its table: times parsed, budgets (minor units) in the currency's major unit."""
    row: dict[str, Any] = {_KEYS[table]: obj["id"]}
    for name in STRUCTURE_FIELDS[table]:
        value = obj.get(name)
        if name == "creative":
            row["creative_id"] = value.get("id") if isinstance(value, dict) else None
        elif name.endswith("_time"):
            row[name] = graph_time(value)
        elif name == "daily_budget":
            row[name] = major_units(value, currency)
        else:
            row[name] = value
    return row


def graph_time(value: str | None) -> dt.datetime | None:
    """Graph's 2026-11-30T08:15:00+0000 as an aware UTC datetime."""
    return dt.datetime.strptime(value, "%Y-%m-%dT%H:%M:%S%z").astimezone(dt.timezone.utc) if value else None


def major_units(minor: str | int | None, currency: str) -> Decimal | None:
    """Graph budgets are in the currency's minor unit (cents), except currencies that have none (yen)."""
    if minor in (None, ""):
        return None
    return Decimal(minor) if currency in ZERO_DECIMAL_CURRENCIES else Decimal(minor) / 100


def _int(value: Any) -> int | None:
    return int(value) if value is not None else None


def _float(value: Any) -> float | None:
    return float(value) if value is not None else None
