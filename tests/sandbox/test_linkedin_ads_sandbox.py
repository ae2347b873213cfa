"""The LinkedIn Ads sandbox at the wire: versioning headers, strict Rest.li parameters, cursor paging of the
search finders, adAnalytics without paging (and its silent 15,000-element cap), account-local days, and
LinkedIn's error shapes for expired tokens, throttling and server errors."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from decimal import Decimal

import pytest
import requests

from pipelines.sandbox.linkedin_ads import AdsData, LinkedInAdsServer, build_data
from pipelines.sandbox.linkedin_ads import restli
from pipelines.sandbox.mail import FaultKind

NOW = dt.datetime(2026, 12, 2, 3, 0, tzinfo=dt.timezone.utc)  # 19:00 on Dec 1 in Los Angeles, 12:00 Dec 2 in Tokyo
HEADERS = {"LinkedIn-Version": "202611", "X-Restli-Protocol-Version": "2.0.0"}
US, EU, JP = 508_000_001, 508_000_002, 508_000_003
ANALYTICS = "/rest/adAnalytics?q=analytics&pivot={pivot}&timeGranularity=DAILY&dateRange={range}&accounts={accounts}" \
            "&fields=dateRange,pivotValues,impressions,clicks,costInLocalCurrency,externalWebsiteConversions"


@pytest.fixture
def data() -> AdsData:
    return build_data(7, history_days=30, now=lambda: NOW)


@pytest.fixture
def server(data: AdsData) -> Iterator[LinkedInAdsServer]:
    with LinkedInAdsServer(data) as running:
        yield running


def get(server: LinkedInAdsServer, path: str, token: str, headers: dict[str, str] | None = None) -> requests.Response:
    return requests.get(server.url + path, headers={"Authorization": f"Bearer {token}", **(headers or HEADERS)},
                        timeout=10)


def accounts_list(*ids: int) -> str:
    return "List(" + ",".join(f"urn%3Ali%3AsponsoredAccount%3A{i}" for i in ids) + ")"


def test_versioned_calls_need_both_headers(server: LinkedInAdsServer, data: AdsData) -> None:
    token = data.members[0].token
    missing = get(server, "/rest/adAccounts?q=search", token, {"X-Restli-Protocol-Version": "2.0.0"})
    assert (missing.status_code, missing.json()["code"]) == (400, "VERSION_MISSING")
    retired = get(server, "/rest/adAccounts?q=search", token, {**HEADERS, "LinkedIn-Version": "202301"})
    assert (retired.status_code, retired.json()["code"]) == (426, "NONEXISTENT_VERSION")
    no_protocol = get(server, "/rest/adAccounts?q=search", token, {"LinkedIn-Version": "202611"})
    assert no_protocol.status_code == 400
    assert get(server, "/rest/adAccounts?q=search", token).status_code == 200


def test_search_pages_by_cursor_and_refuses_index_paging(server: LinkedInAdsServer, data: AdsData) -> None:
    token = data.members[0].token
    path = f"/rest/adAccounts/{US}/adCampaigns?q=search&pageSize=3"
    first = get(server, path, token).json()
    second = get(server, f"{path}&pageToken={first['metadata']['nextPageToken']}", token).json()
    assert [len(first["elements"]), len(second["elements"])] == [3, 1]
    assert "nextPageToken" not in second["metadata"]
    assert [c["id"] for c in first["elements"] + second["elements"]] == sorted(c.id for c in data.accounts[US].campaigns)
    assert get(server, f"/rest/adAccounts/{US}/adCampaigns?q=search&start=0&count=3", token).status_code == 400
    assert get(server, f"{path}&pageToken=garbage", token).status_code == 400
    creatives = get(server, f"/rest/adAccounts/{US}/creatives?q=criteria&pageSize=100", token).json()["elements"]
    assert len(creatives) == 8 and creatives[0]["id"].startswith("urn:li:sponsoredCreative:")


def test_a_member_reads_only_their_accounts(server: LinkedInAdsServer, data: AdsData) -> None:
    accounts = get(server, "/rest/adAccounts?q=search", data.members[1].token).json()["elements"]
    assert [(a["id"], a["currency"]) for a in accounts] == [(JP, "JPY")]
    denied = get(server, f"/rest/adAccounts/{US}/adCampaignGroups?q=search", data.members[1].token)
    assert (denied.status_code, denied.json()["code"]) == (403, "ACCESS_DENIED")


def test_restli_parameters_are_parsed_strictly() -> None:
    assert restli.date_range("(start:(year:2026,month:11,day:1),end:(year:2026,month:11,day:30))") == (
        dt.date(2026, 11, 1), dt.date(2026, 11, 30))
    assert restli.urn_list("List(urn%3Ali%3AsponsoredAccount%3A5,urn%3Ali%3AsponsoredAccount%3A6)", "accounts",
                           "sponsoredAccount") == [5, 6]
    bad = [
        "%28start%3A%28year%3A2026%2Cmonth%3A11%2Cday%3A1%29%29",  # parentheses encoded by an HTTP library
        "(start:(year:2026,month:2,day:30))",  # not a date
        "(start:(year:2026,month:11))",  # day missing
        "(start:(year:2026,month:11,day:1),end:(year:2026,month:10,day:1))",  # end before start
        "(start:(year:2026,month:11,day:1),until:(year:2026,month:11,day:2))",  # unknown field
        "(start:(year:2026,month:11,day:1)",  # not closed
        "(start:(year:2026,month:11,day:x1))",
    ]
    for raw in bad:
        with pytest.raises(restli.RestliError):
            restli.date_range(raw)
    with pytest.raises(restli.RestliError):  # a URN's colons sent literally are Rest.li syntax, not the value
        restli.urn_list("List(urn:li:sponsoredAccount:5)", "accounts", "sponsoredAccount")


def test_analytics_by_campaign_and_creative_per_account_day(server: LinkedInAdsServer, data: AdsData) -> None:
    token = data.members[0].token
    window = "(start:(year:2026,month:11,day:25))"
    by_campaign = get(server, ANALYTICS.format(pivot="CAMPAIGN", range=window, accounts=accounts_list(US, EU)), token)
    by_creative = get(server, ANALYTICS.format(pivot="CREATIVE", range=window, accounts=accounts_list(US, EU)), token)
    expected: dict[tuple[str, dt.date], tuple[int, Decimal]] = {}
    for account_id in (US, EU):
        for creative in data.accounts[account_id].creatives:
            for day in data.days(data.accounts[account_id], dt.date(2026, 11, 25), None):
                metrics = data.creative_day(creative, day)
                if metrics:
                    expected[(f"urn:li:sponsoredCreative:{creative.id}", day)] = (metrics.impressions, metrics.cost)

    def rows(response: requests.Response) -> dict[tuple[str, dt.date], tuple[int, Decimal]]:
        assert response.status_code == 200
        return {(e["pivotValues"][0], dt.date(**e["dateRange"]["start"])): (e["impressions"],
                                                                            Decimal(e["costInLocalCurrency"]))
                for e in response.json()["elements"]}

    assert rows(by_creative) == expected
    campaigns = rows(by_campaign)
    assert sum(i for i, _ in campaigns.values()) == sum(i for i, _ in expected.values())
    assert sum(c for _, c in campaigns.values()) == sum(c for _, c in expected.values())
    # Account-local days: Los Angeles is still on Dec 1 (19:00), Berlin already on Dec 2 (04:00).
    days = {(key.split(":")[-1], day) for key, day in campaigns}
    assert max(d for c, d in days if int(c) // 100_000 == 3200) == dt.date(2026, 12, 1)
    assert max(d for c, d in days if int(c) // 100_000 == 3201) == dt.date(2026, 12, 2)


def test_todays_figures_grow_and_restated_days_change(server: LinkedInAdsServer, data: AdsData) -> None:
    today = data.accounts[JP].today(NOW)
    creative = next(c for c in data.accounts[JP].creatives if data.creative_day(c, today) is not None)
    noon = data.creative_day(creative, today)
    data.now = lambda: NOW + dt.timedelta(hours=6)
    evening = data.creative_day(creative, today)
    assert noon is not None and evening is not None and evening.impressions > noon.impressions
    assert noon.cost == noon.cost.to_integral_value()  # yen have no minor unit
    past = today - dt.timedelta(days=3)
    data.restate(creative.id, past, conversions=17)
    assert data.creative_day(creative, past).conversions == 17


def test_analytics_has_no_paging_and_cuts_at_its_cap(server: LinkedInAdsServer, data: AdsData) -> None:
    token = data.members[0].token
    path = ANALYTICS.format(pivot="CREATIVE", range="(start:(year:2026,month:11,day:1))", accounts=accounts_list(US))
    refused = get(server, path + "&start=0", token)
    assert refused.status_code == 400 and "paging" in refused.json()["message"]
    whole = len(get(server, path, token).json()["elements"])
    server.max_analytics_elements = 10
    assert whole > 10 and len(get(server, path, token).json()["elements"]) == 10
    assert get(server, path.replace("pivot=CREATIVE", "pivot=MEMBER_JOB_TITLE"), token).status_code == 400
    assert get(server, path.replace("fields=dateRange", "fields=approximateMemberReach,dateRange"), token).status_code == 400
    without_fields = get(server, path.split("&fields=")[0], token).json()["elements"][0]
    assert set(without_fields) == {"impressions", "clicks"}


def test_errors_in_linkedins_shape_and_requests_counted(server: LinkedInAdsServer, data: AdsData) -> None:
    token = data.members[0].token
    server.faults.inject(FaultKind.RATE_LIMIT, endpoint="adAccounts.search", retry_after=2)
    throttled = get(server, "/rest/adAccounts?q=search", token)
    assert (throttled.status_code, throttled.headers["Retry-After"], throttled.json()["code"]) == (
        429, "2", "TOO_MANY_REQUESTS")
    server.faults.inject(FaultKind.SERVER_ERROR, endpoint="adAccounts.search", status=502)
    assert get(server, "/rest/adAccounts?q=search", token).status_code == 502
    server.expire_token(token)
    expired = get(server, "/rest/adAccounts?q=search", token)
    assert (expired.status_code, expired.json()["code"]) == (401, "EXPIRED_ACCESS_TOKEN")
    assert get(server, "/rest/adAccounts?q=search", data.members[1].token).status_code == 200
    assert server.http_requests == {"adAccounts.search": 4}
