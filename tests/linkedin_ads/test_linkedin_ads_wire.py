"""The LinkedIn sandbox's contract, as LinkedIn's versioned API holds callers to it, and the source's client on it:
the version and protocol headers, cursor paging of the search finders (pages through dlt's paginator, counted),
no paging on adAnalytics, and no member-level or demographic pivots (LinkedIn's terms: campaign analytics only)."""

from __future__ import annotations

import pytest
import requests

from pipelines.connections.report import SyncReport
from pipelines.linkedin_ads import settings
from pipelines.linkedin_ads.client import LinkedInClient
from tests.linkedin_ads.conftest import US, AdsPlatform

HEADERS = {"LinkedIn-Version": settings.API_VERSION, "X-Restli-Protocol-Version": "2.0.0"}
ANALYTICS = ("q=analytics&pivot={pivot}&timeGranularity=DAILY"
             "&dateRange=(start:(year:2026,month:11,day:1),end:(year:2026,month:11,day:2))"
             f"&accounts=List(urn%3Ali%3AsponsoredAccount%3A{US})")


def _get(ads: AdsPlatform, path: str, headers: dict[str, str]) -> requests.Response:
    token = ads.data.members[0].token
    return requests.get(f"{ads.server.url}/rest/{path}", headers={"Authorization": f"Bearer {token}", **headers},
                        timeout=10)


@pytest.mark.parametrize("headers, status, code", [
    ({"X-Restli-Protocol-Version": "2.0.0"}, 400, "VERSION_MISSING"),
    ({"LinkedIn-Version": "202001", "X-Restli-Protocol-Version": "2.0.0"}, 426, "NONEXISTENT_VERSION"),
    ({"LinkedIn-Version": settings.API_VERSION}, 400, "ILLEGAL_ARGUMENT"),
])
def test_every_call_needs_an_active_version_and_restli_2(ads: AdsPlatform, headers: dict[str, str], status: int,
                                                         code: str) -> None:
    answer = _get(ads, "adAccounts?q=search", headers)
    assert (answer.status_code, answer.json()["code"]) == (status, code)
    assert _get(ads, "adAccounts?q=search", HEADERS).status_code == 200


def test_member_level_and_demographic_pivots_are_not_served(ads: AdsPlatform) -> None:
    for pivot in ("MEMBER_COMPANY", "MEMBER_JOB_TITLE", "MEMBER_COUNTRY_V2"):
        answer = _get(ads, "adAnalytics?" + ANALYTICS.format(pivot=pivot), HEADERS)
        assert answer.status_code == 400 and "no member data" in answer.json()["message"]
    assert _get(ads, "adAnalytics?" + ANALYTICS.format(pivot="CAMPAIGN"), HEADERS).status_code == 200
    # The source's own pivots are the campaign ones only.
    assert set(settings.TABLES) >= {settings.CAMPAIGN_ANALYTICS, settings.CREATIVE_ANALYTICS}
    assert not [t for t in settings.TABLES if "member" in t or "demographic" in t]


def test_adanalytics_has_no_paging(ads: AdsPlatform) -> None:
    answer = _get(ads, "adAnalytics?" + ANALYTICS.format(pivot="CREATIVE") + "&start=0&count=10", HEADERS)
    assert answer.status_code == 400 and "does not support pagination" in answer.json()["message"]


def test_the_source_pages_the_search_finders_by_cursor(ads: AdsPlatform, monkeypatch) -> None:
    monkeypatch.setattr(settings, "PAGE_SIZE", 3)
    report = SyncReport("test", "linkedin_ads")
    client = LinkedInClient(ads.data.members[0].token, report, f"{ads.server.url}/rest")
    creatives = list(client.search(f"adAccounts/{US}/creatives", "criteria"))
    held = sorted(c.id for c in ads.data.accounts[US].creatives)
    assert len(held) == 8
    assert sorted(int(c["id"].rsplit(":", 1)[1]) for c in creatives) == held  # every one, none twice
    assert report.http_requests == ads.server.http_requests["creatives.criteria"] == 3  # pages of 3, 3 and 2
    # Index paging is refused: LinkedIn pages these finders by token since version 202401.
    answer = _get(ads, f"adAccounts/{US}/creatives?q=criteria&start=0&count=3", HEADERS)
    assert answer.status_code == 400 and "pageToken" in answer.json()["message"]
