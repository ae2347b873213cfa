"""Fixtures of the Google Ads tests: the gRPC sandbox on a free port with a fixed clock, the real google-ads
client, real dlt loads into a DuckDB file in a tmp folder."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import duckdb
import pytest

from pipelines.connections.report import SyncReport
from pipelines.google_ads import GoogleAdsRun, SyncOptions
from pipelines.google_ads.client import AdsAccess, AdsApi, ads_client
from pipelines.google_ads.sync import load
from pipelines.connections.retry import RetryPolicy
from pipelines.sandbox.google_ads import ACCESS_TOKEN, DEVELOPER_TOKEN, MANAGER_ID, GoogleAdsSandbox, build_world

# 23:30 UTC: already tomorrow in Berlin (00:30) and Tokyo (08:30), still today in Los Angeles (15:30).
NOW = dt.datetime(2026, 12, 2, 23, 30, tzinfo=dt.timezone.utc)
HISTORY_DAYS = 40
FAST = RetryPolicy(attempts=4, base_delay=0.01, max_delay=0.05)


class Clock:
    """A settable clock shared by the sandbox and the source."""

    def __init__(self, now: dt.datetime) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now


@dataclass
class AdsHarness:
    """The sandbox plus one connection's warehouse, cursors and last run."""

    sandbox: GoogleAdsSandbox
    clock: Clock
    root: Path
    state: dict[str, Any] = field(default_factory=dict)
    connection_id: str = "ws_0001-google_ads-0"
    workspace_id: str = "ws_0001"

    @property
    def world(self):
        return self.sandbox.world

    @property
    def warehouse(self) -> Path:
        return self.root / "warehouse.duckdb"

    def run(self, *, window: int = 14, timeout: float = 30.0, developer_token: str = DEVELOPER_TOKEN,
            policy: RetryPolicy = FAST) -> GoogleAdsRun:
        report = SyncReport(self.connection_id, "google_ads")
        access = AdsAccess(developer_token, MANAGER_ID, access_token=ACCESS_TOKEN, endpoint=self.sandbox.endpoint)
        api = AdsApi(ads_client(access), report, policy=policy, timeout=timeout)
        return GoogleAdsRun(api, self.connection_id, self.workspace_id, MANAGER_ID, dict(self.state), report,
                            SyncOptions(conversion_window_days=window, history_days=HISTORY_DAYS, clock=self.clock),
                            warehouse_path=self.warehouse)

    def sync(self, run: GoogleAdsRun | None = None, **options: Any) -> GoogleAdsRun:
        """Run and load; the cursors are kept only when the load succeeded (as the asset does)."""
        run = run or self.run(**options)
        load(run, warehouse_path=self.warehouse, dlt_dir=self.root / "dlt")
        self.state = run.state
        return run

    def query(self, sql: str, params: list | None = None) -> list[tuple]:
        with duckdb.connect(str(self.warehouse), read_only=True) as con:
            return con.execute(sql, params or []).fetchall()

    def count(self, table: str) -> int:
        return self.query(f"SELECT count(*) FROM raw_google_ads.{table}")[0][0]


@pytest.fixture
def clock() -> Clock:
    return Clock(NOW)


@pytest.fixture
def sandbox(clock: Clock) -> Iterator[GoogleAdsSandbox]:
    with GoogleAdsSandbox(build_world(history_days=60, clock=clock), page_size=10) as server:
        yield server


@pytest.fixture
def ads(sandbox: GoogleAdsSandbox, clock: Clock, tmp_path: Path) -> AdsHarness:
    return AdsHarness(sandbox, clock, tmp_path)
