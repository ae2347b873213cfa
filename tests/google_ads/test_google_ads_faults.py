"""Every fault switch of the sandbox against the source: transient failures are retried and the result is still an
exact mirror; the daily quota stops the run cleanly with the completed slices loaded; an expired token asks for
re-authorisation; an expired page token restarts the listing."""

from __future__ import annotations

import pytest

from pipelines.connections.errors import ReauthorizationRequired
from pipelines.google_ads.client import GoogleAdsRequestFailed
from pipelines.sandbox.google_ads import AdsFault
from tests.google_ads.conftest import HISTORY_DAYS, NOW, AdsHarness
from tests.google_ads.expected import ad_days

AD_DAILY = "SELECT customer_id, ad_id, date, impressions, clicks, cost_micros, conversions FROM raw_google_ads.google_ads_ad_daily"


def _mirror(ads: AdsHarness) -> None:
    assert {(r[0], r[1], r[2]): r[3:] for r in ads.query(AD_DAILY)} == ad_days(ads.world, NOW, HISTORY_DAYS)
    assert ads.count("google_ads_keywords") == 54
    assert ads.count("google_ads_campaign_daily") == ads.query(
        "SELECT count(DISTINCT (customer_id, campaign_id, date)) FROM raw_google_ads.google_ads_campaign_daily")[0][0]


def _cause(exc: BaseException, kind: type[BaseException]) -> BaseException | None:
    while exc is not None:
        if isinstance(exc, kind):
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


@pytest.mark.parametrize("fault, method, times", [
    (AdsFault.INTERNAL, "SearchStream", 2),
    (AdsFault.UNAVAILABLE, "SearchStream", 1),
    (AdsFault.UNAVAILABLE, "Search", 2),
    (AdsFault.STREAM_CUT, "SearchStream", 2),
    (AdsFault.RATE_LIMIT, "Search", 1),
])
def test_transient_faults_are_retried_and_the_mirror_is_exact(ads: AdsHarness, fault: AdsFault, method: str,
                                                             times: int) -> None:
    ads.sandbox.faults.inject(fault, times, method=method, skip=3)
    run = ads.sync()
    assert ads.sandbox.faults.fired[fault.value] == times
    assert run.report.retries == times
    assert run.report.http_requests == sum(v for k, v in ads.sandbox.calls.items() if ":" not in k)
    assert run.stopped is None
    _mirror(ads)


def test_a_stream_cut_midway_repeats_the_slice_without_duplicates(ads: AdsHarness) -> None:
    ads.sandbox.stream_batch = 5  # several messages per stream, so the cut comes after some rows arrived
    ads.sandbox.faults.inject(AdsFault.STREAM_CUT, 1, method="SearchStream", customer_id="1000000002")
    run = ads.sync()
    assert run.report.retries == 1
    _mirror(ads)


def test_a_slow_answer_past_the_call_timeout_is_retried(ads: AdsHarness) -> None:
    ads.sandbox.faults.inject(AdsFault.SLOW, 1, method="SearchStream", delay=2.0)
    run = ads.sync(ads.run(timeout=0.5))
    assert ads.sandbox.faults.fired["slow"] == 1
    assert run.report.retries == 1  # DEADLINE_EXCEEDED, then the same query again
    _mirror(ads)


def test_the_daily_quota_stops_the_run_cleanly_and_the_next_run_finishes(ads: AdsHarness) -> None:
    # Let the customers, every listing and 10 report slices through, then the quota is used up.
    ads.sandbox.faults.inject(AdsFault.DAILY_QUOTA, 1, method="SearchStream", skip=10)
    run = ads.sync()
    assert run.stopped and "QUOTA_ERROR RESOURCE_EXHAUSTED" in run.stopped
    assert run.report.retries == 0  # the daily quota is not retried
    # Nothing after the quota error was asked for.
    assert ads.sandbox.calls["SearchStream"] == 11
    # What was read is loaded, and each cursor says how far its report got (whole slices only).
    loaded = {(r[0], r[1]) for r in ads.query("SELECT customer_id, table_name FROM ("
                                                "SELECT customer_id, 'ad' AS table_name FROM raw_google_ads.google_ads_ad_daily "
                                                "UNION ALL SELECT customer_id, 'campaign' FROM raw_google_ads.google_ads_campaign_daily "
                                                "UNION ALL SELECT customer_id, 'ad_group' FROM raw_google_ads.google_ads_ad_group_daily)")}
    cursors = run.state["daily"]
    assert sum(len(c) for c in cursors.values()) >= 1
    for table, by_customer in cursors.items():
        level = table.removeprefix("google_ads_").removesuffix("_daily")
        for customer_id, last in by_customer.items():
            assert (customer_id, level) in loaded
            stored_max = ads.query(f"SELECT max(date) FROM raw_google_ads.{table} WHERE customer_id = ?",
                                   [customer_id])[0][0]
            assert stored_max.isoformat() <= last
    # The next run (quota reset) reads the rest: the same warehouse as one clean run.
    ads.sandbox.calls.clear()
    run = ads.sync()
    assert run.stopped is None
    _mirror(ads)


def test_the_daily_quota_before_anything_was_read_loads_nothing_and_fails_nothing(ads: AdsHarness) -> None:
    ads.sandbox.faults.inject(AdsFault.DAILY_QUOTA, 1, method="Search")
    run = ads.sync()
    assert run.stopped and not any(run.state.get("daily", {}).values())  # no cursor moved
    assert ads.sandbox.calls["Search"] == 1 and ads.sandbox.calls["SearchStream"] == 0
    run = ads.sync()
    assert run.stopped is None
    _mirror(ads)


def test_an_expired_token_asks_for_reauthorisation_and_loads_nothing(ads: AdsHarness) -> None:
    ads.sandbox.faults.inject(AdsFault.EXPIRED_TOKEN, 1, method="SearchStream")
    with pytest.raises(Exception) as raised:
        ads.sync()
    refused = _cause(raised.value, ReauthorizationRequired)
    assert refused is not None
    assert str(refused) == ("Google Ads AUTHENTICATION_ERROR OAUTH_TOKEN_EXPIRED: the user must connect the "
                            "account again")
    assert ads.state == {}
    assert not ads.warehouse.exists() or ads.query(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'google_ads_ad_daily'") == [(0,)]


def test_a_wrong_developer_token_is_not_the_users_problem(ads: AdsHarness) -> None:
    with pytest.raises(Exception) as raised:
        ads.sync(developer_token="not-the-platforms-token")
    failed = _cause(raised.value, GoogleAdsRequestFailed)
    assert failed is not None and "DEVELOPER_TOKEN_INVALID" in str(failed)
    assert _cause(raised.value, ReauthorizationRequired) is None


def test_an_expired_page_token_restarts_the_listing(ads: AdsHarness) -> None:
    # Keywords of the second client: 18 rows in pages of 10; the second page's token has expired.
    ads.sandbox.faults.inject(AdsFault.EXPIRED_PAGE_TOKEN, 1, method="Search", customer_id="1000000002")
    run = ads.sync()
    assert ads.sandbox.faults.fired["expired_page_token"] == 1
    restarted = [s for s in ("google_ads_ad_groups", "google_ads_ads", "google_ads_keywords")
                 if run.report.stream(s).cursor_expired]
    assert len(restarted) == 1
    # The listing restarted from its first page: 2 pages, then 2 again, and nothing twice in the table.
    assert ads.sandbox.calls["Search:1000000002"] == 1 + 1 + 2 + 2 + 2
    assert run.report.retries == 0
    _mirror(ads)
    assert ads.count("google_ads_ads") == 36 and ads.count("google_ads_ad_groups") == 18
