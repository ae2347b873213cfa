"""A manager with a sub-manager under it (Google's account hierarchies): every leaf client is synced exactly once,
whichever path reaches it, and no manager is asked for metrics or listings."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from pipelines.sandbox.google_ads import MANAGER_ID, SUB_MANAGER_ID, GoogleAdsSandbox, build_world
from tests.google_ads.conftest import HISTORY_DAYS, NOW, AdsHarness, Clock
from tests.google_ads.expected import ad_days

LEAVES = ("1000000001", "1000000002", "1000000003", "1000000004")


@pytest.fixture
def agency(tmp_path: Path) -> Iterator[AdsHarness]:
    clock = Clock(NOW)
    with GoogleAdsSandbox(build_world(history_days=60, clock=clock, sub_manager=True), page_size=10) as sandbox:
        yield AdsHarness(sandbox, clock, tmp_path)


def test_the_sandbox_lists_the_whole_hierarchy_with_levels(agency: AdsHarness) -> None:
    world = agency.world
    assert world.descendants(MANAGER_ID) == {MANAGER_ID: 0, "1000000001": 1, "1000000002": 1, "1000000003": 1,
                                             SUB_MANAGER_ID: 1, "1000000004": 2}
    assert world.descendants(SUB_MANAGER_ID) == {SUB_MANAGER_ID: 0, "1000000002": 1, "1000000004": 1}
    assert world.ancestors("1000000004") == {SUB_MANAGER_ID, MANAGER_ID}


def test_every_leaf_client_is_synced_once_through_the_sub_manager(agency: AdsHarness) -> None:
    run = agency.sync()
    assert run.stopped is None
    assert agency.query("SELECT customer_id, manager_id, level, manager, currency_code "
                        "FROM raw_google_ads.google_ads_customers ORDER BY customer_id") == [
        ("1000000001", MANAGER_ID, 1, False, "USD"),
        ("1000000002", MANAGER_ID, 1, False, "EUR"),  # also under the sub-manager: kept once, at level 1
        ("1000000003", MANAGER_ID, 1, False, "JPY"),
        ("1000000004", SUB_MANAGER_ID, 2, False, "AUD"),
        (MANAGER_ID, MANAGER_ID, 0, True, "USD"),
        (SUB_MANAGER_ID, MANAGER_ID, 1, True, "EUR"),
    ]
    calls = agency.sandbox.calls
    # The hierarchy: one customer_client listing of the manager and one of its sub-manager, nothing else of either.
    assert (calls[f"Search:{MANAGER_ID}"], calls[f"Search:{SUB_MANAGER_ID}"]) == (1, 1)
    assert calls[f"SearchStream:{MANAGER_ID}"] == calls[f"SearchStream:{SUB_MANAGER_ID}"] == 0
    # Each leaf once: 3 reports x 3 slices of 14 days, and its four listings (campaigns, ad groups, ads and
    # keywords in pages of 10: 1 + 1 + 2 + 2 pages).
    assert {cid: calls[f"SearchStream:{cid}"] for cid in LEAVES} == dict.fromkeys(LEAVES, 9)
    assert {cid: calls[f"Search:{cid}"] for cid in LEAVES} == dict.fromkeys(LEAVES, 6)
    assert calls["SearchStream"] == 36 and calls["Search"] == 2 + 24
    # The warehouse holds each leaf's days exactly once (the DE client is not read twice).
    rows = agency.query("SELECT customer_id, ad_id, date, impressions, clicks, cost_micros, conversions "
                        "FROM raw_google_ads.google_ads_ad_daily")
    assert {(r[0], r[1], r[2]): r[3:] for r in rows} == ad_days(agency.world, NOW, HISTORY_DAYS)
    assert len(rows) == len(ad_days(agency.world, NOW, HISTORY_DAYS))
    assert agency.query("SELECT customer_id, count(*) FROM raw_google_ads.google_ads_campaigns GROUP BY 1 "
                        "ORDER BY 1") == [(cid, 3) for cid in LEAVES]
    assert run.report.stream("google_ads_campaigns").inserted == 12


def test_a_disabled_sub_manager_is_not_walked(agency: AdsHarness) -> None:
    agency.world.customers[SUB_MANAGER_ID].status = "CANCELED"
    agency.sync()
    assert agency.sandbox.calls[f"Search:{SUB_MANAGER_ID}"] == 0
    assert agency.query("SELECT DISTINCT customer_id FROM raw_google_ads.google_ads_ad_daily ORDER BY 1") == [
        ("1000000001",), ("1000000002",), ("1000000003",)]
