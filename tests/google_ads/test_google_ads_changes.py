"""Incremental entity syncs through `change_status`: the first sync lists everything, later ones read again only
what ChangeStatus reports added, changed or removed since the last one (exact requests and rows); a cursor past
ChangeStatus' 90 days, or a window with more changes than one query returns, lists everything again. The sandbox
refuses change_status queries as the API does."""

from __future__ import annotations

import datetime as dt

import pytest
from google.ads.googleads.client import GoogleAdsClient
from google.ads.googleads.errors import GoogleAdsException
from google.oauth2.credentials import Credentials

from pipelines.sandbox.google_ads import ACCESS_TOKEN, DEVELOPER_TOKEN, MANAGER_ID, AdsFault, GoogleAdsSandbox
from pipelines.sandbox.google_ads.world import Change
from tests.google_ads.conftest import NOW, AdsHarness

ENTITY_TABLES = ("google_ads_campaigns", "google_ads_ad_groups", "google_ads_ads", "google_ads_keywords")
CLIENTS = ("1000000001", "1000000002", "1000000003")


def _entity_calls(ads: AdsHarness) -> dict[str, list[str]]:
    """The Search requests of the last sync by FROM resource: the customers they went to (one per page)."""
    calls: dict[str, list[str]] = {}
    for call in ads.sandbox.log:
        if call.method == "Search":
            resource = call.query.split(" FROM ", 1)[1].split(" ", 1)[0]
            calls.setdefault(resource, []).append(call.customer_id)
    return calls


def _counts(run) -> dict[str, tuple[int, int, bool]]:
    return {t: (run.report.stream(t).inserted, run.report.stream(t).updated, run.report.stream(t).full_resync)
            for t in ENTITY_TABLES}


def _fresh_log(ads: AdsHarness) -> None:
    ads.sandbox.log.clear()
    ads.sandbox.calls.clear()


def test_after_the_first_sync_only_what_changed_is_read_again(ads: AdsHarness) -> None:
    first = ads.sync()
    assert _counts(first) == {"google_ads_campaigns": (9, 0, True), "google_ads_ad_groups": (18, 0, True),
                              "google_ads_ads": (36, 0, True), "google_ads_keywords": (54, 0, True)}
    assert "change_status" not in _entity_calls(ads)  # nothing to compare with yet: no change_status query
    # Each cursor is the sync's instant in the client's time zone (23:30 UTC).
    assert first.state["entities"]["google_ads_keywords"] == {
        "1000000001": "2026-12-02 15:30:00", "1000000002": "2026-12-03 00:30:00", "1000000003": "2026-12-03 08:30:00"}

    ads.clock.now = NOW + dt.timedelta(hours=1)
    world = ads.world
    world.rename_campaign(1_010_000, "Sandbox Outdoor US winter boots")
    added = world.add_campaign("1000000001", "Sandbox Outdoor US spring")
    world.remove_keyword(201_010_001)  # the DE client's first keyword
    world.pause_ad_group(3_010_100)  # the JP client's first ad group
    ads.clock.now = NOW + dt.timedelta(hours=2)
    _fresh_log(ads)
    run = ads.sync()

    calls = _entity_calls(ads)
    # One change_status query per client (each from its cursor less 3 minutes to its time now), then one re-read
    # of each changed table where something changed; nothing else.
    assert calls == {"customer_client": [MANAGER_ID], "change_status": list(CLIENTS),
                     "campaign": ["1000000001"], "ad_group": ["1000000003"], "ad_group_criterion": ["1000000002"]}
    windows = [c.query.split("BETWEEN ", 1)[1].split(" AND change_status.resource_type")[0]
               for c in ads.sandbox.log if "FROM change_status" in c.query]
    assert windows == ["'2026-12-02 15:27:00' AND '2026-12-02 17:30:00'",
                       "'2026-12-03 00:27:00' AND '2026-12-03 02:30:00'",
                       "'2026-12-03 08:27:00' AND '2026-12-03 10:30:00'"]
    reread = next(c.query for c in ads.sandbox.log if c.query.startswith("SELECT campaign.id"))
    assert reread.endswith("WHERE campaign.resource_name IN ('customers/1000000001/campaigns/1010000', "
                           f"'customers/1000000001/campaigns/{added.campaign_id}')")
    assert _counts(run) == {"google_ads_campaigns": (1, 1, False), "google_ads_ad_groups": (0, 1, False),
                            "google_ads_ads": (0, 0, False), "google_ads_keywords": (0, 1, False)}
    assert ads.query("SELECT campaign_id, name, status FROM raw_google_ads.google_ads_campaigns "
                     "WHERE campaign_id IN (1010000, ?) ORDER BY 1", [added.campaign_id]) == [
        (1_010_000, "Sandbox Outdoor US winter boots", "ENABLED"),
        (added.campaign_id, "Sandbox Outdoor US spring", "ENABLED")]
    assert ads.query("SELECT status FROM raw_google_ads.google_ads_keywords WHERE criterion_id = 201010001") == [
        ("REMOVED",)]
    assert ads.query("SELECT status FROM raw_google_ads.google_ads_ad_groups WHERE ad_group_id = 3010100") == [
        ("PAUSED",)]
    assert {t: ads.count(t) for t in ENTITY_TABLES} == {"google_ads_campaigns": 10, "google_ads_ad_groups": 18,
                                                        "google_ads_ads": 36, "google_ads_keywords": 54}
    assert run.state["entities"]["google_ads_campaigns"]["1000000003"] == "2026-12-03 10:30:00"

    # Nothing changed since: one change_status query per client and no listing at all.
    ads.clock.now = NOW + dt.timedelta(hours=3)
    _fresh_log(ads)
    run = ads.sync()
    assert _entity_calls(ads) == {"customer_client": [MANAGER_ID], "change_status": list(CLIENTS)}
    assert _counts(run) == dict.fromkeys(ENTITY_TABLES, (0, 0, False))


@pytest.mark.parametrize("days_later, lists_everything", [(88, False), (90, True)])
def test_a_cursor_past_change_status_reach_lists_everything_again(ads: AdsHarness, days_later: int,
                                                                 lists_everything: bool) -> None:
    ads.sync()
    ads.clock.now = NOW + dt.timedelta(days=days_later)
    ads.world.remove_keyword(101_010_002)
    _fresh_log(ads)
    run = ads.sync()
    calls = _entity_calls(ads)
    counts = run.report.stream("google_ads_keywords")
    if lists_everything:  # ChangeStatus reaches 90 days back: the source does not ask, it lists every entity
        assert "change_status" not in calls
        assert calls["ad_group_criterion"] == ["1000000001"] * 2 + ["1000000002"] * 2 + ["1000000003"] * 2
        assert (counts.inserted, counts.updated, counts.full_resync) == (0, 54, True)
    else:
        assert calls["change_status"] == list(CLIENTS)
        assert calls["ad_group_criterion"] == ["1000000001"]
        assert (counts.inserted, counts.updated, counts.full_resync) == (0, 1, False)
    assert ads.query("SELECT count(*) FROM raw_google_ads.google_ads_keywords WHERE status = 'REMOVED'") == [(4,)]


def test_a_window_with_more_changes_than_one_query_returns_lists_everything(ads: AdsHarness) -> None:
    ads.sync()
    ads.clock.now = NOW + dt.timedelta(hours=1)
    # 10,000 changed resources in the DE client (ChangeStatus' LIMIT): the window may hold more than it returns.
    ads.world.changes.extend(Change("1000000002", "CAMPAIGN", f"customers/1000000002/campaigns/{9_000_000 + n}",
                                    "CHANGED", ads.clock.now) for n in range(10_000))
    ads.sandbox.page_size = 10_000
    _fresh_log(ads)
    run = ads.sync()
    calls = _entity_calls(ads)
    assert calls["change_status"] == list(CLIENTS)
    assert calls["campaign"] == ["1000000002"]  # the DE client's campaigns listed in full, nobody else's read
    assert calls["ad_group"] == calls["ad_group_ad"] == calls["ad_group_criterion"] == ["1000000002"]
    assert run.report.stream("google_ads_campaigns").full_resync is True
    assert run.report.stream("google_ads_campaigns").updated == 3


def _refusal(sandbox: GoogleAdsSandbox, where: str, limit: str = " LIMIT 100") -> str:
    client = GoogleAdsClient(credentials=Credentials(token=ACCESS_TOKEN), developer_token=DEVELOPER_TOKEN,
                             endpoint=sandbox.endpoint, login_customer_id=MANAGER_ID, use_proto_plus=True,
                             version="v26")
    query = f"SELECT change_status.resource_name FROM change_status WHERE {where}{limit}"
    with pytest.raises(GoogleAdsException) as raised:
        list(client.get_service("GoogleAdsService").search(customer_id="1000000001", query=query))
    return raised.value.failure.errors[0].error_code.change_status_error.name


def test_change_status_queries_the_api_refuses(sandbox: GoogleAdsSandbox) -> None:
    # The sandbox clock is 2026-12-02 15:30 in Los Angeles.
    assert _refusal(sandbox, "change_status.last_change_date_time >= '2026-12-01 00:00:00'") == \
        "CHANGE_DATE_RANGE_INFINITE"
    assert _refusal(sandbox, "change_status.last_change_date_time BETWEEN '2026-12-02 00:00:00' AND "
                             "'2026-12-01 00:00:00'") == "CHANGE_DATE_RANGE_NEGATIVE"
    assert _refusal(sandbox, "change_status.last_change_date_time BETWEEN '2026-09-02 15:29:00' AND "
                             "'2026-12-01 00:00:00'") == "START_DATE_TOO_OLD"
    window = "change_status.last_change_date_time BETWEEN '2026-11-01 00:00:00' AND '2026-12-02 00:00:00'"
    assert _refusal(sandbox, window, limit="") == "LIMIT_NOT_SPECIFIED"
    assert _refusal(sandbox, window, limit=" LIMIT 10001") == "INVALID_LIMIT_CLAUSE"


def test_change_status_keeps_the_latest_change_of_each_resource(sandbox: GoogleAdsSandbox, clock) -> None:
    world = sandbox.world
    world.rename_campaign(1_010_000, "renamed")
    clock.now = NOW + dt.timedelta(minutes=5)
    world.remove_campaign(1_010_000)
    client = GoogleAdsClient(credentials=Credentials(token=ACCESS_TOKEN), developer_token=DEVELOPER_TOKEN,
                             endpoint=sandbox.endpoint, login_customer_id=MANAGER_ID, use_proto_plus=True,
                             version="v26")
    rows = list(client.get_service("GoogleAdsService").search(customer_id="1000000001", query=(
        "SELECT change_status.campaign, change_status.resource_status, change_status.last_change_date_time "
        "FROM change_status WHERE change_status.last_change_date_time BETWEEN '2026-12-02 15:00:00' AND "
        "'2026-12-02 16:00:00' LIMIT 10")))
    assert [(r.change_status.campaign, r.change_status.resource_status.name, r.change_status.last_change_date_time)
            for r in rows] == [("customers/1000000001/campaigns/1010000", "REMOVED", "2026-12-02 15:35:00")]


def test_the_daily_quota_during_the_change_status_query_keeps_the_entity_cursors(ads: AdsHarness) -> None:
    ads.sync()
    cursors = {t: dict(c) for t, c in ads.state["entities"].items()}
    ads.clock.now = NOW + dt.timedelta(hours=1)
    ads.world.rename_campaign(1_010_000, "renamed while the quota was used up")
    ads.sandbox.faults.inject(AdsFault.DAILY_QUOTA, 1, method="Search", customer_id="1000000001")
    _fresh_log(ads)
    run = ads.sync()
    assert run.stopped and "QUOTA_ERROR RESOURCE_EXHAUSTED" in run.stopped
    assert _entity_calls(ads) == {"customer_client": [MANAGER_ID], "change_status": ["1000000001"]}
    assert run.state["entities"] == cursors  # nothing read, nothing moved
    ads.clock.now = NOW + dt.timedelta(hours=2)
    run = ads.sync()
    assert run.stopped is None
    assert run.report.stream("google_ads_campaigns").updated == 1
    assert ads.query("SELECT name FROM raw_google_ads.google_ads_campaigns WHERE campaign_id = 1010000") == [
        ("renamed while the quota was used up",)]
