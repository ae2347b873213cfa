"""What the warehouse must hold, computed from the sandbox world directly (not through the server or GAQL)."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from zoneinfo import ZoneInfo

from pipelines.sandbox.google_ads.world import World


def local_yesterday(world: World, customer_id: str, now: dt.datetime) -> dt.date:
    return now.astimezone(ZoneInfo(world.customers[customer_id].time_zone)).date() - dt.timedelta(days=1)


def ad_days(world: World, now: dt.datetime, history_days: int) -> dict[tuple, tuple]:
    """(customer_id, ad_id, date) -> (impressions, clicks, cost_micros, conversions) for every day a first sync
    at `now` reads."""
    out = {}
    for ad in world.ads:
        last = local_yesterday(world, ad.customer_id, now)
        for n in range(history_days):
            day = last - dt.timedelta(days=n)
            m = world.ad_metrics(ad, day)
            if m is not None:
                out[(ad.customer_id, ad.ad_id, day)] = (m.impressions, m.clicks, m.cost_micros, m.conversions)
    return out


def rollup(world: World, ad_rows: dict[tuple, tuple], level: str) -> dict[tuple, tuple]:
    """The ad rows summed to campaign or ad group: (customer_id, id, date) -> sums."""
    parent = {a.ad_id: (a.campaign_id if level == "campaign" else a.ad_group_id) for a in world.ads}
    sums: dict[tuple, list] = defaultdict(lambda: [0, 0, 0, 0.0])
    for (cid, ad_id, day), values in ad_rows.items():
        total = sums[(cid, parent[ad_id], day)]
        for i, v in enumerate(values):
            total[i] += v
    return {k: tuple(v) for k, v in sums.items()}
