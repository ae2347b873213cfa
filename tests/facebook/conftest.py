"""A Meta ads platform in a tmp folder: the seeded ad accounts on the local Graph API server, a connection
registry, a real keyring and DuckDB warehouse; syncs run the real source with the real facebook-business SDK."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pipelines.connections.report import SyncReport
from pipelines.facebook.client import GraphEndpoint
from pipelines.facebook.sandbox import seed_connections
from pipelines.facebook.settings import SyncOptions
from pipelines.facebook.sync import sync
from pipelines.sandbox.facebook import FacebookServer, World, build_world
from tests.conftest import DataFolder

# 03:00 UTC: already the 30th in Tokyo and Berlin, still the 29th in Los Angeles.
NOW = dt.datetime(2026, 11, 30, 3, 0, tzinfo=dt.timezone.utc)
PLAN = (("ws_0001", 0), ("ws_0001", 1), ("ws_0002", 2))
WEST, TOKYO, BERLIN = "ws_0001-facebook_ads-0", "ws_0001-facebook_ads-1", "ws_0002-facebook_ads-2"
CONNECTIONS = {WEST: 0, TOKYO: 1, BERLIN: 2}
DAYS = 40
RAW = "raw_facebook_ads"


@dataclass
class AdsPlatform(DataFolder):
    world: World
    server: FacebookServer

    def account(self, connection_id: str):
        return self.world.accounts[CONNECTIONS[connection_id]]

    def sync(self, connection_id: str, options: SyncOptions | None = None) -> SyncReport:
        registry = self.registry
        with self.keyring() as cipher:
            return sync(registry, cipher, registry.get(connection_id), GraphEndpoint(self.server.url),
                        warehouse_path=self.warehouse, dlt_dir=self.dlt_dir, work_dir=self.work_dir,
                        now=lambda: self.world.now, options=options)

    def insights(self, connection_id: str) -> dict[tuple[str, dt.date], tuple]:
        """(ad, day) -> (impressions, reach, clicks, spend) as stored."""
        rows = self.query(f"SELECT ad_id, date_day, impressions, reach, clicks, spend FROM {RAW}.ad_insights "
                          "WHERE connection_id = ?", [connection_id])
        return {(r[0], r[1]): r[2:] for r in rows}

    def decrypted_leads(self, connection_id: str) -> dict[str, dict[str, Any]]:
        """lead id -> decrypted personal columns."""
        rows = self.query(f"SELECT lead_id, workspace_id, subject_ref, email, full_name, phone_number, answers "
                          f"FROM {RAW}.leads WHERE connection_id = ? ORDER BY lead_id", [connection_id])
        out: dict[str, dict[str, Any]] = {r[0]: {} for r in rows}
        with self.keyring() as cipher:
            for i, column in enumerate(("email", "full_name", "phone_number", "answers"), start=3):
                plain = cipher.decrypt_many([r[1] for r in rows], [r[2] for r in rows], [r[i] for r in rows],
                                            f"leads.{column}").to_pylist()
                for row, value in zip(rows, plain):
                    out[row[0]][column] = value
        return out


def expected_insights(platform: AdsPlatform, connection_id: str) -> dict[tuple[str, dt.date], tuple]:
    account = platform.account(connection_id)
    return {key: (f.impressions, f.reach, f.clicks, f.spend) for key, f in account.insights.items()}


def expected_actions(platform: AdsPlatform, connection_id: str) -> int:
    """Rows of ad_insight_actions the account's insights give: per action type shown, its default value and
    each non-zero window (Meta leaves zero windows out)."""
    count = 0
    for figures in platform.account(connection_id).insights.values():
        for per_type in (figures.actions, figures.action_values):
            for counts in per_type.values():
                windows = [w for w, v in counts.items() if v]
                if counts["7d_click"] + counts["1d_view"] or windows:
                    count += 1 + len(windows)
    return count


def assert_mirror(ads: AdsPlatform, connection_id: str) -> None:
    """Every table of the connection equals the sandbox account."""
    account = ads.account(connection_id)
    for table, kind, key in (("campaigns", "campaign", "campaign_id"), ("ad_sets", "adset", "adset_id"),
                             ("ads", "ad", "ad_id")):
        held = ads.query(f"SELECT {key}, name, effective_status FROM {RAW}.{table} WHERE connection_id = ? ORDER BY 1",
                         [connection_id])
        assert held == sorted((o.id, o.fields["name"], o.status) for o in account.of_kind(kind)), table
    creatives = ads.query(f"SELECT creative_id, title FROM {RAW}.ad_creatives WHERE connection_id = ? ORDER BY 1",
                          [connection_id])
    assert creatives == sorted((o.id, o.fields["title"]) for o in account.of_kind("adcreative"))
    assert ads.insights(connection_id) == expected_insights(ads, connection_id)
    actions = ads.query(f"SELECT count(*), count(DISTINCT insight_id) FROM {RAW}.ad_insight_actions "
                        "WHERE connection_id = ?", [connection_id])[0]
    assert actions[0] == expected_actions(ads, connection_id)
    leads = ads.decrypted_leads(connection_id)
    assert {i: lead["email"] for i, lead in leads.items()} == {l.id: l.answers["email"] for l in account.leads.values()}


@contextmanager
def ads_platform(root: Path, now: dt.datetime | None) -> Iterator[AdsPlatform]:
    """The seeded accounts on a sandbox server of their own, their connections registered. `now` None is the
    real clock, the one a Dagster run's sync reads."""
    world = build_world(5, campaigns=3, adsets=2, ads=2, days=DAYS, leads=8, now=now)
    with FacebookServer(world) as server:
        platform = AdsPlatform(root, world, server)
        with platform.keyring() as cipher:
            seed_connections(platform.registry, cipher, world, PLAN)
        yield platform


@pytest.fixture
def ads(tmp_path: Path) -> Iterator[AdsPlatform]:
    with ads_platform(tmp_path / "data", NOW) as platform:
        yield platform
