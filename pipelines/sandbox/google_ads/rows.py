"""The rows a query reads: the world's entities (and their daily metrics) as flat dicts keyed by GAQL field path,
and one such dict as a v26 `GoogleAdsRow` protobuf."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import Any, Iterator
from zoneinfo import ZoneInfo

from google.ads.googleads.v26.services.types.google_ads_service import GoogleAdsRow
from google.protobuf.descriptor import FieldDescriptor

from pipelines.sandbox.google_ads.gaql import Query, QueryError, proto_field
from pipelines.sandbox.google_ads.world import (
    Ad,
    Customer,
    DailyMetrics,
    World,
    ad_group_name,
    ad_name,
    campaign_name,
    keyword_name,
)

_METRICS = ("impressions", "clicks", "cost_micros", "conversions", "conversions_value", "all_conversions")
CHANGE_STATUS_DAYS = 90  # how far back change_status reaches
CHANGE_STATUS_LIMIT = 10_000  # the most rows one change_status query may ask for


class ManagerMetricsError(ValueError):
    """Metrics asked of a manager account (QueryError.REQUESTED_METRICS_FOR_MANAGER)."""


def query_rows(world: World, customer_id: str, query: Query) -> list[dict[str, Any]]:
    """Every row `query` selects from the account, before filtering (conditions, order and limit are the
    query's own work); metric rows only for (entity, day) pairs that served."""
    with world.lock:
        customer = world.customers[customer_id]
        if query.has_metrics and customer.manager:
            raise ManagerMetricsError(customer_id)
        if query.resource == "change_status":
            _check_change_status(world, customer, query)
        entities = list(_entities(world, customer, query.resource))
        if not (query.has_metrics or query.segmented_by_date):
            return entities
        start, end = query.date_range()
        days = list(world.days(customer_id, start, end))
        return list(_with_metrics(world, customer, query, entities, days))


def _customer_fields(customer: Customer) -> dict[str, Any]:
    return {"customer.id": int(customer.customer_id), "customer.descriptive_name": customer.name,
            "customer.currency_code": customer.currency, "customer.time_zone": customer.time_zone,
            "customer.manager": customer.manager, "customer.status": customer.status,
            "customer.resource_name": f"customers/{customer.customer_id}"}


def _client_fields(client: Customer, level: int, seen_from: str) -> dict[str, Any]:
    return {"customer_client.id": int(client.customer_id), "customer_client.descriptive_name": client.name,
            "customer_client.currency_code": client.currency, "customer_client.time_zone": client.time_zone,
            "customer_client.manager": client.manager, "customer_client.status": client.status,
            "customer_client.level": level, "customer_client.client_customer": f"customers/{client.customer_id}",
            "customer_client.resource_name": f"customers/{seen_from}/customerClients/{client.customer_id}"}


def _entities(world: World, customer: Customer, resource: str) -> Iterator[dict[str, Any]]:
    """One flat dict per entity of `resource` in the account, with the fields of the resources it is attributed to
    and the keys (`_ads`) that its metrics are summed from."""
    cid = customer.customer_id
    base = _customer_fields(customer)
    if resource == "customer":
        yield {**base, "_ads": [a for a in world.ads if a.customer_id == cid]}
        return
    if resource == "customer_client":
        # Every account of the hierarchy under this one (direct and indirect links), at its shortest distance.
        for client_id, level in world.descendants(cid).items():
            yield {**base, **_client_fields(world.customers[client_id], level, cid)}
        return
    if resource == "change_status":
        yield from _change_status(world, customer, base)
        return
    campaigns = {c.campaign_id: c for c in world.campaigns if c.customer_id == cid}
    ad_groups = {g.ad_group_id: g for g in world.ad_groups if g.customer_id == cid}
    ads_of_group: dict[int, list[Ad]] = defaultdict(list)
    for ad in world.ads:
        if ad.customer_id == cid:
            ads_of_group[ad.ad_group_id].append(ad)

    def campaign_fields(campaign_id: int) -> dict[str, Any]:
        c = campaigns[campaign_id]
        return {**base, "campaign.id": c.campaign_id, "campaign.name": c.name, "campaign.status": c.status,
                "campaign.advertising_channel_type": c.channel,
                "campaign.resource_name": campaign_name(c)}

    def ad_group_fields(ad_group_id: int) -> dict[str, Any]:
        g = ad_groups[ad_group_id]
        return {**campaign_fields(g.campaign_id), "ad_group.id": g.ad_group_id, "ad_group.name": g.name,
                "ad_group.status": g.status, "ad_group.type": "SEARCH_STANDARD",
                "ad_group.resource_name": ad_group_name(g)}

    if resource == "campaign":
        for campaign_id in campaigns:
            ads = [a for g in ad_groups.values() if g.campaign_id == campaign_id for a in ads_of_group[g.ad_group_id]]
            yield {**campaign_fields(campaign_id), "_ads": ads}
    elif resource == "ad_group":
        for ad_group_id in ad_groups:
            yield {**ad_group_fields(ad_group_id), "_ads": ads_of_group[ad_group_id]}
    elif resource == "ad_group_ad":
        for ads in ads_of_group.values():
            for ad in ads:
                yield {**ad_group_fields(ad.ad_group_id), "ad_group_ad.ad.id": ad.ad_id, "ad_group_ad.ad.name": ad.name,
                       "ad_group_ad.ad.type": ad.type, "ad_group_ad.status": ad.status,
                       "ad_group_ad.resource_name": ad_name(ad),
                       "_ads": [ad]}
    elif resource == "ad_group_criterion":
        for k in world.keywords:
            if k.customer_id == cid:
                yield {**ad_group_fields(k.ad_group_id), "ad_group_criterion.criterion_id": k.criterion_id,
                       "ad_group_criterion.type": "KEYWORD", "ad_group_criterion.keyword.text": k.text,
                       "ad_group_criterion.keyword.match_type": k.match_type, "ad_group_criterion.status": k.status,
                       "ad_group_criterion.negative": k.negative,
                       "ad_group_criterion.resource_name": keyword_name(k)}


def _check_change_status(world: World, customer: Customer, query: Query) -> None:
    """What the API demands of a change_status query: a finite, non-negative window on last_change_date_time
    starting at most 90 days back (account time), and a LIMIT of at most 10,000."""
    def refused(code: str, message: str) -> QueryError:
        return QueryError(code, message, kind="change_status_error")

    low, high = query.bounds("change_status.last_change_date_time")
    if low is None or high is None:
        raise refused("CHANGE_DATE_RANGE_INFINITE", "The change_status search request must specify a finite range "
                                                    "filter on last_change_date_time.")
    if low > high:
        raise refused("CHANGE_DATE_RANGE_NEGATIVE", "The change status search request has specified invalid date "
                                                    "time filters that can never logically produce any valid results.")
    oldest = (world.clock().astimezone(ZoneInfo(customer.time_zone)).replace(tzinfo=None)
              - dt.timedelta(days=CHANGE_STATUS_DAYS))
    if str(low) < oldest.strftime("%Y-%m-%d %H:%M:%S"):
        raise refused("START_DATE_TOO_OLD", "The requested start date is too old.")
    if query.limit is None:
        raise refused("LIMIT_NOT_SPECIFIED", "The change_status search request must specify a LIMIT.")
    if query.limit > CHANGE_STATUS_LIMIT:
        raise refused("INVALID_LIMIT_CLAUSE", "The LIMIT specified by change_status request should be less than or "
                                              "equal to 10K.")


# ChangeStatusResourceType -> the change_status field that names the changed resource.
_CHANGED_FIELD = {"CAMPAIGN": "campaign", "AD_GROUP": "ad_group", "AD_GROUP_AD": "ad_group_ad",
                  "AD_GROUP_CRITERION": "ad_group_criterion"}


def _change_status(world: World, customer: Customer, base: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The account's latest change per resource; times in the account's time zone, as the API gives them."""
    zone = ZoneInfo(customer.time_zone)
    for n, change in enumerate(world.latest_changes(customer.customer_id), start=1):
        yield {**base, "change_status.resource_name": f"customers/{customer.customer_id}/changeStatus/{n}",
               "change_status.last_change_date_time": change.at.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S"),
               "change_status.resource_type": change.resource_type, "change_status.resource_status": change.status,
               f"change_status.{_CHANGED_FIELD[change.resource_type]}": change.resource_name}


def _with_metrics(world: World, customer: Customer, query: Query, entities: list[dict[str, Any]],
                  days: list[dt.date]) -> Iterator[dict[str, Any]]:
    cache: dict[tuple[int, dt.date], DailyMetrics | None] = {}

    def metrics_of(ad: Ad, day: dt.date) -> DailyMetrics | None:
        key = (ad.ad_id, day)
        if key not in cache:
            cache[key] = world.ad_metrics(ad, day)
        return cache[key]

    for entity in entities:
        ads = entity.get("_ads", [])
        if query.segmented_by_date:
            for day in days:
                served = [m for m in (metrics_of(a, day) for a in ads) if m is not None]
                if served:
                    yield {**entity, "segments.date": day.isoformat(), **_summed(served)}
        else:
            served = [m for day in days for m in (metrics_of(a, day) for a in ads) if m is not None]
            yield {**entity, **_summed(served)}


def _summed(served: list[DailyMetrics]) -> dict[str, Any]:
    return {f"metrics.{name}": sum(getattr(m, name) for m in served) for name in _METRICS}


def to_row(flat: dict[str, Any]) -> Any:
    """A flat dict (field path -> value; enums by name) as a GoogleAdsRow protobuf message."""
    row = GoogleAdsRow.pb()()
    for path, value in flat.items():
        if value is None:
            continue
        message = row
        *parents, leaf = path.split(".")
        for part in parents:
            message = getattr(message, proto_field(message.DESCRIPTOR, part).name)
        field = proto_field(message.DESCRIPTOR, leaf)
        if field.type == FieldDescriptor.TYPE_ENUM:
            value = field.enum_type.values_by_name[value].number
        setattr(message, field.name, value)
    return row
