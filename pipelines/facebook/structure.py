"""The ad account and its structure (campaigns, ad sets, ads, creatives), listed whole on every sync.

Every effective status is asked for: Graph leaves DELETED and ARCHIVED objects out of a listing unless told
to list them, and a deleted campaign must keep its row with its status (its past spend still counts), not
vanish. Structure is small next to insights (a few thousand objects), so a full listing merged on id costs a
handful of pages and never misses an edit.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any, Iterator

import pyarrow as pa
from facebook_business.adobjects.ad import Ad
from facebook_business.adobjects.adaccount import AdAccount
from facebook_business.adobjects.adset import AdSet
from facebook_business.adobjects.campaign import Campaign

from pipelines.facebook.client import GraphClient
from pipelines.facebook.settings import (
    ACCOUNT_FIELDS, AD_SETS_TABLE, ADS_TABLE, CAMPAIGNS_TABLE, CREATIVES_TABLE, STRUCTURE_FIELDS,
    ZERO_DECIMAL_CURRENCIES,
)
from pipelines.mail_common.stage import Stream, StreamWriter

# The SDK's edge reader of each table, and the class whose EffectiveStatus enum lists every status.
_EDGES = {CAMPAIGNS_TABLE: ("get_campaigns", Campaign), AD_SETS_TABLE: ("get_ad_sets", AdSet),
          ADS_TABLE: ("get_ads", Ad), CREATIVES_TABLE: ("get_ad_creatives", None)}
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


def sync_account(writer: StreamWriter, account: dict[str, Any]) -> list[pa.Table]:
    return writer.upsert([account])


def sync_structure(writer: StreamWriter, client: GraphClient, account: dict[str, Any]) -> Iterator[pa.Table]:
    """Every object of the writer's table, in every status, merged on its id."""
    stream: Stream = writer.stream
    method, status_class = _EDGES[stream.table]
    params: dict[str, Any] = {}
    if status_class is not None:
        params["effective_status"] = sorted(v for k, v in vars(status_class.EffectiveStatus).items()
                                            if not k.startswith("_"))
    edge = getattr(AdAccount(f"act_{account['account_id']}", api=client.api), method)
    fields = list(STRUCTURE_FIELDS[stream.table])
    for page in client.pages(lambda limit: edge(fields=fields, params={**params, "limit": limit})):
        yield from writer.upsert(structure_record(stream.table, obj, account["currency"]) for obj in page)


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
