"""OAuth against a token endpoint on 127.0.0.1: the real google-auth credentials of the google-ads client refresh an
expired access token and the sync goes on; a refresh token the user revoked (`invalid_grant`) makes the connection
need re-authorisation at once, without retries; a wrong OAuth client is the platform's fault."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

from pipelines.connections.outcome import recorded_outcome
from pipelines.connections.registry import ConnectionRegistry
from pipelines.google_ads import GoogleAdsRun, SyncOptions
from pipelines.google_ads.client import GoogleAdsRequestFailed
from pipelines.google_ads.connect import GoogleAdsApp, open_run, record_loaded
from pipelines.google_ads.sync import load
from pipelines.sandbox.google_ads import ACCESS_TOKEN, DEVELOPER_TOKEN, MANAGER_ID, GoogleAdsSandbox, build_world
from pipelines.sandbox.google_ads.oauth import CLIENT_ID, CLIENT_SECRET, REFRESH_TOKEN, OAuthTokenSandbox
from resources.keyring import KeyringResource
from tests.google_ads.conftest import HISTORY_DAYS, NOW, AdsHarness, Clock
from tests.google_ads.expected import ad_days

CONNECTION = "ws_0001-google_ads-0"


@dataclass
class Platform:
    ads: AdsHarness
    oauth: OAuthTokenSandbox
    registry: ConnectionRegistry
    keyring: KeyringResource

    def sync(self, app: GoogleAdsApp | None = None) -> GoogleAdsRun:
        """One run of the connection as `python -m pipelines.google_ads` makes it: outcome recorded on the
        connection, cursors and a refreshed token saved after the load."""
        app = app or GoogleAdsApp(DEVELOPER_TOKEN, CLIENT_ID, CLIENT_SECRET, token_uri=self.oauth.token_uri)
        connection = self.registry.get(CONNECTION)
        options = SyncOptions(history_days=HISTORY_DAYS, clock=self.ads.clock)
        with self.keyring.open() as cipher, recorded_outcome(self.registry, connection):
            access_token = self.registry.tokens(cipher, connection).access_token
            run = open_run(self.registry, cipher, connection, app, endpoint=self.ads.sandbox.endpoint,
                           options=options, warehouse_path=self.ads.warehouse)
            load(run, warehouse_path=self.ads.warehouse, dlt_dir=self.ads.root / "dlt")
            record_loaded(self.registry, cipher, connection, run, access_token)
        return run

    def tokens(self):
        with self.keyring.open() as cipher:
            return self.registry.tokens(cipher, self.registry.get(CONNECTION))


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[Platform]:
    clock = Clock(NOW)
    with GoogleAdsSandbox(build_world(history_days=60, clock=clock), page_size=10) as sandbox, \
            OAuthTokenSandbox(sandbox) as oauth:
        keyring = KeyringResource(master_key_file=str(tmp_path / "keys" / "master.key"),
                                  keyring_path=str(tmp_path / "keys" / "keyring.sqlite"))
        registry = ConnectionRegistry(tmp_path / "connections.sqlite")
        with keyring.open() as cipher:
            registry.add(cipher, "ws_0001", "google_ads", MANAGER_ID, refresh_token=REFRESH_TOKEN,
                         access_token=ACCESS_TOKEN, connection_id=CONNECTION)
        yield Platform(AdsHarness(sandbox, clock, tmp_path), oauth, registry, keyring)


def test_an_expired_access_token_is_refreshed_and_the_sync_succeeds(platform: Platform) -> None:
    ads = platform.ads
    ads.sandbox.expire(ACCESS_TOKEN)  # the stored token's hour is over
    run = platform.sync()
    assert platform.oauth.requests == {"refreshed": 1}
    # The first call was refused as expired and made again with the new token; nothing else was retried.
    assert ads.sandbox.calls[f"Search:{MANAGER_ID}"] == 2
    assert run.report.retries == 0
    assert run.report.http_requests == ads.sandbox.calls["Search"] + ads.sandbox.calls["SearchStream"] + 1
    connection = platform.registry.get(CONNECTION)
    assert connection.status == "active"
    assert platform.tokens().access_token == "sandbox-google-ads-access-token-1"  # kept (encrypted) for next time
    assert ads.count("google_ads_campaigns") == 9
    assert {(r[0], r[1], r[2]): r[3:] for r in ads.query(
        "SELECT customer_id, ad_id, date, impressions, clicks, cost_micros, conversions "
        "FROM raw_google_ads.google_ads_ad_daily")} == ad_days(ads.world, NOW, HISTORY_DAYS)
    # The next run uses the stored token: no refresh.
    platform.sync()
    assert platform.oauth.requests == {"refreshed": 1}


def test_a_connection_without_an_access_token_gets_one_before_its_first_call(platform: Platform) -> None:
    with platform.keyring.open() as cipher:
        platform.registry.reauthorise(cipher, CONNECTION, REFRESH_TOKEN, None)
    platform.sync()
    assert platform.oauth.requests == {"refreshed": 1}
    assert platform.ads.sandbox.calls[f"Search:{MANAGER_ID}"] == 1  # no call went out without a token
    assert platform.tokens().access_token == "sandbox-google-ads-access-token-1"


def test_a_revoked_refresh_token_needs_reauthorisation_without_retries(platform: Platform) -> None:
    ads = platform.ads
    ads.sandbox.expire(ACCESS_TOKEN)
    platform.oauth.revoke(REFRESH_TOKEN)  # the user removed the app's access in their Google account
    with pytest.raises(Exception):
        platform.sync()
    assert platform.oauth.requests == {"invalid_grant": 1}
    assert ads.sandbox.calls["Search"] == 1 and ads.sandbox.calls["SearchStream"] == 0
    connection = platform.registry.get(CONNECTION)
    assert (connection.status, connection.status_detail) == (
        "needs_reauth", "Google Ads OAuth token refresh refused (invalid_grant): the user must connect the account "
                        "again")
    assert connection.sync_state == {}
    assert platform.tokens().access_token == ACCESS_TOKEN
    assert not ads.warehouse.exists() or ads.query(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'google_ads_ad_daily'") == [(0,)]


def test_a_wrong_oauth_client_is_the_platforms_fault(platform: Platform) -> None:
    platform.ads.sandbox.expire(ACCESS_TOKEN)
    wrong = GoogleAdsApp(DEVELOPER_TOKEN, CLIENT_ID, "not-the-secret", token_uri=platform.oauth.token_uri)
    with pytest.raises(Exception) as raised:
        platform.sync(wrong)
    assert platform.oauth.requests == {"invalid_client": 1}
    connection = platform.registry.get(CONNECTION)
    assert (connection.status, connection.status_detail) == ("erroring", "GoogleAdsRequestFailed")
    cause = raised.value
    while cause is not None and not isinstance(cause, GoogleAdsRequestFailed):
        cause = cause.__cause__ or cause.__context__
    assert str(cause) == ("Google Ads OAuth token refresh refused (invalid_client): the platform's OAuth client is "
                          "wrong, not the user's")
