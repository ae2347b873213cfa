"""A LinkedIn Ads platform in a tmp folder: the seeded sandbox on a real local server with a clock the test
moves, a connection registry, a real keyring and DuckDB warehouse; syncs run the real dlt source and REST
client (nothing mocked)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pytest

from pipelines.connections.report import SyncReport
from pipelines.linkedin_ads.sandbox import seed_connections
from pipelines.linkedin_ads.sync import sync_connection
from pipelines.sandbox.linkedin_ads import AdsData, LinkedInAdsServer, build_data
from tests.conftest import DataFolder

NOW = dt.datetime(2026, 12, 2, 3, 0, tzinfo=dt.timezone.utc)  # Dec 1, 19:00 in Los Angeles; Dec 2 in Berlin, Tokyo
HISTORY_DAYS = 45
WS1, WS2 = "ws_0001-linkedin_ads-0", "ws_0002-linkedin_ads-1"  # member 0: US + EU accounts; member 1: JP account
US, EU, JP = 508_000_001, 508_000_002, 508_000_003


class Clock:
    """The sandbox's and the source's now: tests move it between syncs."""

    def __init__(self, now: dt.datetime) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += dt.timedelta(**delta)


@dataclass
class AdsPlatform(DataFolder):
    data: AdsData
    server: LinkedInAdsServer
    clock: Clock

    def sync(self, connection_id: str) -> SyncReport:
        registry = self.registry
        with self.keyring() as cipher:
            return sync_connection(registry, cipher, registry.get(connection_id), base_url=f"{self.server.url}/rest",
                                   warehouse_path=self.warehouse, dlt_dir=self.dlt_dir, now=self.clock)

    def expected_creative_days(self, account_ids: tuple[int, ...]) -> dict[tuple[int, dt.date], tuple]:
        """(creative id, day) -> (impressions, clicks, cost, conversions, conversion value) the sandbox serves."""
        expected = {}
        for account_id in account_ids:
            account = self.data.accounts[account_id]
            first = min(c.start for c in account.campaigns)
            for creative in account.creatives:
                for day in self.data.days(account, first, None):
                    m = self.data.creative_day(creative, day)
                    if m is not None:
                        expected[(creative.id, day)] = (m.impressions, m.clicks, m.cost, m.conversions,
                                                        m.conversion_value)
        return expected

    def held_creative_days(self, connection_id: str) -> dict[tuple[int, dt.date], tuple]:
        rows = self.query(
            "SELECT creative_id, date_day, impressions, clicks, cost_in_local_currency, external_website_conversions, "
            "conversion_value_in_local_currency FROM raw_linkedin_ads.linkedin_ads_creative_analytics "
            "WHERE connection_id = ?", [connection_id])
        return {(r[0], r[1]): (r[2], r[3], Decimal(r[4]).normalize(), r[5], Decimal(r[6]).normalize()) for r in rows}


def normalised(expected: dict[tuple[int, dt.date], tuple]) -> dict[tuple[int, dt.date], tuple]:
    return {k: (i, c, cost.normalize(), conv, value.normalize()) for k, (i, c, cost, conv, value) in expected.items()}


@pytest.fixture
def ads(tmp_path: Path) -> Iterator[AdsPlatform]:
    clock = Clock(NOW)
    data = build_data(7, history_days=HISTORY_DAYS, now=clock)
    with LinkedInAdsServer(data) as server:
        platform = AdsPlatform(tmp_path, data, server, clock)
        with platform.keyring() as cipher:
            seed_connections(platform.registry, cipher, data)
        yield platform
