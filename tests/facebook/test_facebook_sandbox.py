"""The Graph API sandbox through the real facebook-business SDK: paging, hidden statuses, async report runs,
usage headers and Meta's error codes, as the source will meet them."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from facebook_business.adobjects.adaccount import AdAccount
from facebook_business.adobjects.leadgenform import LeadgenForm
from facebook_business.api import FacebookAdsApi
from facebook_business.exceptions import FacebookRequestError
from facebook_business.session import FacebookSession

from pipelines.sandbox.facebook import REDUCE_DATA, FacebookServer, build_world

NOW = dt.datetime(2026, 11, 30, 3, 0, tzinfo=dt.timezone.utc)
ALL_STATUSES = ["ACTIVE", "PAUSED", "ARCHIVED", "DELETED"]
INSIGHT_FIELDS = ["ad_id", "impressions", "clicks", "spend", "actions", "action_values"]


@pytest.fixture
def world():
    return build_world(3, campaigns=3, adsets=2, ads=2, days=10, leads=5, now=NOW)


@pytest.fixture
def server(world):
    with FacebookServer(world) as running:
        yield running


def account_of(server, index: int = 0) -> AdAccount:
    account = server.world.accounts[index]
    api = FacebookAdsApi(_session(account.token, server.url), "v26.0")
    return AdAccount(account.id, api=api)


def _session(token: str, url: str) -> FacebookSession:
    session = FacebookSession(access_token=token)
    session.GRAPH = url
    return session


def params(since: dt.date, until: dt.date, **extra) -> dict:
    return {"level": "ad", "time_increment": 1, "time_range": {"since": since.isoformat(), "until": until.isoformat()},
            "action_attribution_windows": ["1d_click", "7d_click", "28d_click", "1d_view"], **extra}


def test_accounts_have_their_own_time_zone_currency_and_today(server, world):
    west, tokyo = account_of(server, 0).api_get(fields=["currency", "timezone_name"]), account_of(server, 1).api_get(
        fields=["currency", "timezone_name"])
    assert (west["currency"], west["timezone_name"]) == ("USD", "America/Los_Angeles")
    assert (tokyo["currency"], tokyo["timezone_name"]) == ("JPY", "Asia/Tokyo")
    assert world.accounts[0].today() == dt.date(2026, 11, 29)  # 03:00 UTC is still the 29th in Los Angeles
    assert world.accounts[1].today() == dt.date(2026, 11, 30)


def test_structure_pages_and_hides_deleted_and_archived_unless_asked(server, world):
    account = world.accounts[0]
    account.delete_campaign("1001010000")
    api_account = account_of(server)
    default = [c["id"] for c in api_account.get_campaigns(fields=["name"], params={"limit": 1})]
    everything = {c["id"]: c["effective_status"] for c in api_account.get_campaigns(
        fields=["effective_status"], params={"limit": 1, "effective_status": ALL_STATUSES})}
    assert default == ["1001020000"]  # campaign 3 is ARCHIVED, campaign 1 now DELETED
    assert everything == {"1001010000": "DELETED", "1001020000": "PAUSED", "1001030000": "ARCHIVED"}
    assert server.http_requests["campaigns"] == 1 + 3  # one page each: limit=1
    ads = list(api_account.get_ads(fields=["effective_status"], params={"limit": 500, "effective_status": ALL_STATUSES}))
    assert len(ads) == len(account.of_kind("ad")) == 12


def test_async_report_run_polls_then_pages_rows(server, world):
    account = world.accounts[1]
    today = account.today()
    job = account_of(server, 1).get_insights(fields=INSIGHT_FIELDS, params=params(today - dt.timedelta(days=1), today),
                                             is_async=True)
    statuses = []
    while not statuses or statuses[-1] == "Job Running":
        statuses.append(job.api_get()["async_status"])
    assert statuses == ["Job Running", "Job Completed"]
    rows = [r.export_all_data() for r in job.get_insights(params={"limit": 7})]
    assert len(rows) == 2 * 12 and server.http_requests["report_run.insights"] == 4  # 7 + 7 + 7 + 3
    first = rows[0]
    figures = account.insights[(first["ad_id"], today - dt.timedelta(days=1))]
    assert first["spend"] == str(figures.spend) and "." not in first["spend"]  # JPY has no minor unit
    purchase = next(a for a in first["actions"] if a["action_type"] == "offsite_conversion.fb_pixel_purchase")
    counts = figures.actions["offsite_conversion.fb_pixel_purchase"]
    assert int(purchase["value"]) == counts["7d_click"] + counts["1d_view"]


def test_failed_job_and_reduce_data_and_expired_token(server, world):
    account = world.accounts[0]
    today = account.today()
    server.faults.inject("job_failed")
    job = account_of(server).get_insights(fields=INSIGHT_FIELDS, params=params(today, today), is_async=True)
    assert [job.api_get()["async_status"] for _ in range(2)] == ["Job Running", "Job Failed"]
    server.faults.inject("provider_error", code=1, subcode=99, status=500, endpoint="insights")
    with pytest.raises(FacebookRequestError) as reduce:
        account_of(server).get_insights(fields=INSIGHT_FIELDS, params=params(today, today))
    assert (reduce.value.api_error_code(), reduce.value.api_error_subcode()) == (1, 99)
    assert reduce.value.api_error_message() == REDUCE_DATA
    server.faults.inject("expired_token")
    with pytest.raises(FacebookRequestError) as expired:
        account_of(server).api_get(fields=["name"])
    assert expired.value.api_error_code() == 190


def test_history_ends_at_37_months(server, world):
    today = world.accounts[2].today()
    with pytest.raises(FacebookRequestError) as too_old:
        account_of(server, 2).get_insights(fields=INSIGHT_FIELDS, params=params(dt.date(today.year - 4, 1, 1), today))
    assert too_old.value.api_error_code() == 3018


def test_usage_headers_fill_up_and_an_exhausted_account_is_refused(server, world):
    server.usage_per_call, server.usage_window_s = 40, 30
    api_account = account_of(server)
    for _ in range(2):
        api_account.api_get(fields=["name"])
    with pytest.raises(FacebookRequestError) as refused:
        api_account.api_get(fields=["name"])
    seen = json.loads(refused.value.http_headers()["x-ad-account-usage"])
    assert refused.value.api_error_code() == 80004 and server.throttled == 1
    assert seen["acc_id_util_pct"] == 80 and seen["reset_time_duration"] >= 29


def test_leads_newest_first_filtered_by_time_created(server, world):
    account = world.accounts[0]
    api = account_of(server).get_api()
    form_id = sorted(account.forms)[1]
    leads = [lead.export_all_data() for lead in LeadgenForm(form_id, api=api).get_leads(fields=["created_time", "field_data"])]
    expected = sorted((lead for lead in account.leads.values() if lead.form_id == form_id),
                      key=lambda lead: lead.created, reverse=True)
    assert [lead["id"] for lead in leads] == [lead.id for lead in expected]
    assert {f["name"] for f in leads[0]["field_data"]} == {"email", "full_name", "phone_number", "what_is_your_budget?"}
    cut = int(expected[1].created.timestamp())
    newer = LeadgenForm(form_id, api=api).get_leads(params={"filtering": [
        {"field": "time_created", "operator": "GREATER_THAN", "value": cut}]})
    assert [lead["id"] for lead in newer] == [expected[0].id]


def test_structure_filtered_by_updated_time_and_status_with_the_creative_expanded(server, world):
    account = world.accounts[0]
    world.now += dt.timedelta(hours=1)
    account.rename_ad("1001010101", "Renamed")
    cut = int((world.now - dt.timedelta(minutes=1)).timestamp())
    every = {"field": "ad.effective_status", "operator": "IN", "value": ALL_STATUSES}
    newer = {"field": "ad.updated_time", "operator": "GREATER_THAN", "value": cut}
    changed = [a.export_all_data() for a in account_of(server).get_ads(
        fields=["name", "creative{title,status}"], params={"filtering": [every, newer]})]
    assert changed == [{"id": "1001010101", "name": "Renamed",
                        "creative": {"id": "71001010101", "title": "Spring offer 1", "status": "ACTIVE"}}]
    account.delete_campaign("1001010000")
    hidden = list(account_of(server).get_ads(fields=["name"], params={"filtering": [newer]}))
    assert hidden == []  # deleted now, and not asked for
    deleted = [a["id"] for a in account_of(server).get_ads(fields=["name"], params={"filtering": [every, newer]})]
    assert deleted == ["1001010101", "1001010102", "1001010201", "1001010202"]
    with pytest.raises(FacebookRequestError) as unsupported:
        account_of(server).get_ads(params={"filtering": [{"field": "ad.name", "operator": "CONTAIN", "value": "x"}]})
    assert unsupported.value.api_error_code() == 100
