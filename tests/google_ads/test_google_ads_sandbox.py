"""The gRPC sandbox as the real google-ads client sees it: GAQL parsed and checked like the API, errors in the
API's shape, pages and streams agreeing, credentials checked, calls counted, a free port each."""

from __future__ import annotations

import datetime as dt

import grpc
import pytest
from google.ads.googleads.client import GoogleAdsClient
from google.ads.googleads.errors import GoogleAdsException
from google.oauth2.credentials import Credentials

from pipelines.sandbox.google_ads import ACCESS_TOKEN, DEVELOPER_TOKEN, MANAGER_ID, GoogleAdsSandbox, build_world


def _service(sandbox: GoogleAdsSandbox, login: str | None = MANAGER_ID, name: str = "GoogleAdsService"):
    client = GoogleAdsClient(credentials=Credentials(token=ACCESS_TOKEN), developer_token=DEVELOPER_TOKEN,
                             endpoint=sandbox.endpoint, login_customer_id=login, use_proto_plus=True, version="v26")
    return client.get_service(name)


def _stream(service, customer_id: str, query: str) -> list:
    return [row for batch in service.search_stream(customer_id=customer_id, query=query) for row in batch.results]


def _error(service, customer_id: str, query: str) -> GoogleAdsException:
    with pytest.raises(GoogleAdsException) as raised:
        _stream(service, customer_id, query)
    return raised.value


def test_accessible_customers_and_the_manager_hierarchy(sandbox: GoogleAdsSandbox) -> None:
    assert list(_service(sandbox, name="CustomerService").list_accessible_customers().resource_names) == [
        "customers/9990001111"]
    rows = _stream(_service(sandbox), MANAGER_ID, "SELECT customer_client.id, customer_client.currency_code, "
                   "customer_client.time_zone, customer_client.level FROM customer_client "
                   "WHERE customer_client.level <= 1 ORDER BY customer_client.id")
    assert [(r.customer_client.id, r.customer_client.currency_code, r.customer_client.time_zone,
             r.customer_client.level) for r in rows] == [
        (1000000001, "USD", "America/Los_Angeles", 1), (1000000002, "EUR", "Europe/Berlin", 1),
        (1000000003, "JPY", "Asia/Tokyo", 1), (9990001111, "USD", "America/New_York", 0)]


def test_an_unknown_field_is_refused_in_the_apis_shape(sandbox: GoogleAdsSandbox) -> None:
    error = _error(_service(sandbox), "1000000001", "SELECT campaign.id, campaign.budget_colour FROM campaign")
    assert error.error.code() is grpc.StatusCode.INVALID_ARGUMENT
    (failure,) = error.failure.errors
    assert failure.error_code.query_error.name == "UNRECOGNIZED_FIELD"
    assert failure.message == "Unrecognized field in the query: 'campaign.budget_colour'."
    assert failure.trigger.string_value == "campaign.budget_colour"
    assert error.request_id.startswith("sandbox-")


@pytest.mark.parametrize("query, code", [
    ("SELECT ad_group.id FROM campaign", "PROHIBITED_RESOURCE_TYPE_IN_SELECT_CLAUSE"),
    ("SELECT campaign.id FROM campaign_gizmo", "BAD_RESOURCE_TYPE_IN_FROM_CLAUSE"),
    ("SELECT ad_group_criterion.criterion_id, metrics.clicks FROM ad_group_criterion",
     "PROHIBITED_METRIC_IN_SELECT_OR_WHERE_CLAUSE"),
    ("SELECT campaign.id FROM campaign WHERE segments.date BETWEEN '2026-11-01' AND 'soon'", "INVALID_DATE_FORMAT"),
    ("SELECT campaign.id FROM campaign ORDER BY campaign.name", "EXPECTED_REFERENCED_FIELD_IN_SELECT_CLAUSE"),
    ("SELECT campaign.id FROM campaign WHERE", "UNEXPECTED_INPUT"),
    ("SELECT ad_group.type FROM ad_group LIMIT 0", "LIMIT_VALUE_TOO_LOW"),
])
def test_queries_the_api_refuses(sandbox: GoogleAdsSandbox, query: str, code: str) -> None:
    error = _error(_service(sandbox), "1000000001", query)
    assert error.failure.errors[0].error_code.query_error.name == code


def test_metrics_are_refused_for_a_manager(sandbox: GoogleAdsSandbox) -> None:
    error = _error(_service(sandbox), MANAGER_ID, "SELECT customer.id, metrics.clicks FROM customer")
    assert error.failure.errors[0].error_code.query_error.name == "REQUESTED_METRICS_FOR_MANAGER"


def test_a_client_needs_its_manager_as_login_customer(sandbox: GoogleAdsSandbox) -> None:
    error = _error(_service(sandbox, login=None), "1000000001", "SELECT campaign.id FROM campaign")
    assert error.error.code() is grpc.StatusCode.PERMISSION_DENIED
    assert error.failure.errors[0].error_code.authorization_error.name == "USER_PERMISSION_DENIED"
    assert len(_stream(_service(sandbox, login="1000000001"), "1000000001", "SELECT campaign.id FROM campaign")) == 3


def test_conditions_on_status_and_dates(sandbox: GoogleAdsSandbox) -> None:
    service = _service(sandbox)
    removed = _stream(service, "1000000001", "SELECT campaign.id, campaign.status FROM campaign "
                      "WHERE campaign.status = 'REMOVED'")
    assert [(r.campaign.id, r.campaign.status.name) for r in removed] == [(1030000, "REMOVED")]
    kept = _stream(service, "1000000001", "SELECT campaign.id FROM campaign WHERE campaign.status IN ('ENABLED', "
                   "'PAUSED') AND campaign.advertising_channel_type != 'DISPLAY'")
    assert [r.campaign.id for r in kept] == [1010000]
    days = _stream(service, "1000000001", "SELECT ad_group_ad.ad.id, segments.date, metrics.clicks FROM ad_group_ad "
                   "WHERE segments.date BETWEEN '2026-11-20' AND '2026-11-22' AND ad_group_ad.status NOT IN "
                   "('REMOVED') ORDER BY segments.date DESC")
    assert {r.segments.date for r in days} == {"2026-11-20", "2026-11-21", "2026-11-22"}
    assert [r.segments.date for r in days] == sorted((r.segments.date for r in days), reverse=True)
    ids = {r.ad_group_ad.ad.id for r in days}
    assert 10101002 not in ids  # the client's removed ad
    world = sandbox.world
    assert ids == {a.ad_id for a in world.ads if a.customer_id == "1000000001" and a.status != "REMOVED"
                   and any(world.ad_metrics(a, dt.date(2026, 11, d)) for d in (20, 21, 22))}


def test_search_pages_return_what_the_stream_returns(sandbox: GoogleAdsSandbox) -> None:
    service = _service(sandbox)
    query = ("SELECT ad_group_criterion.criterion_id, ad_group_criterion.keyword.text FROM ad_group_criterion "
             "WHERE ad_group_criterion.type = 'KEYWORD'")
    sandbox.calls.clear()
    paged = [r.ad_group_criterion.criterion_id for r in service.search(customer_id="1000000003", query=query)]
    assert sandbox.calls["Search:1000000003"] == 2  # 18 keywords, pages of 10
    assert paged == [r.ad_group_criterion.criterion_id for r in _stream(service, "1000000003", query)]
    assert len(paged) == 18


def test_every_sandbox_has_its_own_port_and_count(sandbox: GoogleAdsSandbox) -> None:
    with GoogleAdsSandbox(build_world()) as other:
        assert other.port not in (0, sandbox.port)
        _stream(_service(other), "1000000001", "SELECT campaign.id FROM campaign")
        assert other.calls["SearchStream"] == 1
    assert sandbox.calls["SearchStream"] == 0


def test_a_wrong_access_token_is_unauthenticated(sandbox: GoogleAdsSandbox) -> None:
    client = GoogleAdsClient(credentials=Credentials(token="someone-elses"), developer_token=DEVELOPER_TOKEN,
                             endpoint=sandbox.endpoint, login_customer_id=MANAGER_ID, use_proto_plus=True,
                             version="v26")
    error = _error(client.get_service("GoogleAdsService"), "1000000001", "SELECT campaign.id FROM campaign")
    assert error.error.code() is grpc.StatusCode.UNAUTHENTICATED
    assert error.failure.errors[0].error_code.authentication_error.name == "OAUTH_TOKEN_INVALID"
