"""The Google Ads assets in Dagster: a partition per connection synced through the connection helpers, counts in
the materialisations, the checks beside the assets, an expired token -> needs re-authorisation, the daily quota
-> a clean stop with the connection erroring until the next run finishes."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from dagster import DagsterInstance, Definitions
from dagster_dlt import DagsterDltResource

from assets.google_ads import GOOGLE_ADS_CHECKS, GOOGLE_ADS_CONNECTIONS, google_ads_assets, google_ads_job
from pipelines.google_ads.sandbox import seed_connections
from pipelines.sandbox.google_ads import AdsFault, GoogleAdsSandbox, build_world
from resources.connections import ConnectionsResource
from resources.google_ads import GoogleAdsResource
from resources.keyring import KeyringResource
from resources.warehouse import WarehouseResource
from tests.google_ads.conftest import AdsHarness

MANAGER_CONNECTION = "ws_0001-google_ads-0"
CLIENT_CONNECTION = "ws_0002-google_ads-1"
HISTORY = 20


@pytest.fixture
def platform(tmp_path: Path):
    with GoogleAdsSandbox(build_world(history_days=60)) as sandbox:  # the real clock, as the assets use it
        resources = {
            "dlt_runner": DagsterDltResource(),
            "warehouse": WarehouseResource(path=str(tmp_path / "warehouse.duckdb"), dlt_dir=str(tmp_path / "dlt"),
                                           work_dir=str(tmp_path / "work")),
            "keyring": KeyringResource(master_key_file=str(tmp_path / "keys" / "master.key"),
                                       keyring_path=str(tmp_path / "keys" / "keyring.sqlite")),
            "connections": ConnectionsResource(connections_path=str(tmp_path / "connections.sqlite")),
            "google_ads": GoogleAdsResource(sandbox=True, endpoint_override=sandbox.endpoint, history_days=HISTORY),
        }
        registry = resources["connections"].registry()
        with resources["keyring"].open() as cipher:
            seed_connections(registry, cipher)
            registry.add(cipher, "ws_0003", "google_ads", "999-000-1111", refresh_token=None,
                         access_token="an-expired-token", sandbox=True, connection_id="ws_0003-google_ads-9")
        defs = Definitions(assets=[google_ads_assets], asset_checks=GOOGLE_ADS_CHECKS, jobs=[google_ads_job],
                           resources=resources)
        instance = DagsterInstance.ephemeral()
        instance.add_dynamic_partitions(GOOGLE_ADS_CONNECTIONS.name, [c.connection_id for c in registry.list()])
        harness = AdsHarness(sandbox, None, tmp_path)
        yield defs, instance, registry, harness


def _run(defs, instance, partition: str):
    return defs.resolve_job_def("google_ads_sync_job").execute_in_process(
        instance=instance, partition_key=partition, raise_on_error=False)


def _metadata(result) -> dict[str, dict]:
    return {e.asset_key.path[-1]: {k: v.value for k, v in e.materialization.metadata.items()}
            for e in result.get_asset_materialization_events()}


def _expected_ad_rows(harness: AdsHarness, cursors: dict[str, str]) -> int:
    """Ad-day rows the world has in the HISTORY days up to each account's cursor (its yesterday at sync time)."""
    world = harness.world
    count = 0
    for ad in world.ads:
        if ad.customer_id in cursors:
            last = dt.date.fromisoformat(cursors[ad.customer_id])
            count += sum(world.ad_metrics(ad, last - dt.timedelta(days=n)) is not None for n in range(HISTORY))
    return count


def test_a_partition_syncs_its_connection_with_counts_and_checks(platform) -> None:
    defs, instance, registry, harness = platform
    result = _run(defs, instance, MANAGER_CONNECTION)
    assert result.success
    checks = result.get_asset_check_evaluations()
    assert len(checks) == 11 and all(c.passed for c in checks)
    meta = _metadata(result)
    assert len(meta) == 8
    cursors = registry.get(MANAGER_CONNECTION).sync_state["daily"]["google_ads_ad_daily"]
    assert sorted(cursors) == ["1000000001", "1000000002", "1000000003"]
    assert meta["google_ads_ad_daily"]["inserted"] == _expected_ad_rows(harness, cursors) == harness.count(
        "google_ads_ad_daily")
    assert meta["google_ads_campaigns"]["inserted"] == 9 and meta["google_ads_customers"]["inserted"] == 4
    assert meta["google_ads_ad_daily"]["quota_exhausted"] is False
    assert meta["google_ads_ad_daily"]["http_requests"] == harness.sandbox.calls["Search"] + harness.sandbox.calls[
        "SearchStream"]
    assert registry.get(MANAGER_CONNECTION).status == "active"

    # The client connected on its own: only its rows, under its own connection.
    assert _run(defs, instance, CLIENT_CONNECTION).success
    assert harness.query("SELECT connection_id, count(DISTINCT customer_id) FROM raw_google_ads.google_ads_ad_daily "
                         "GROUP BY 1 ORDER BY 1") == [(MANAGER_CONNECTION, 3), (CLIENT_CONNECTION, 1)]


def test_an_expired_token_makes_the_connection_need_reauthorisation(platform) -> None:
    defs, instance, registry, harness = platform
    result = _run(defs, instance, "ws_0003-google_ads-9")
    assert not result.success
    failure = result.failure_data_for_node("google_ads").error
    assert "needs re-authorisation" in failure.message
    assert "AUTHENTICATION_ERROR OAUTH_TOKEN_INVALID" in failure.message
    connection = registry.get("ws_0003-google_ads-9")
    assert connection.status == "needs_reauth" and connection.sync_state == {}
    # The schedules leave it alone; a run asked for anyway is refused without a call to Google.
    calls = harness.sandbox.calls["Search"]
    assert not _run(defs, instance, "ws_0003-google_ads-9").success
    assert harness.sandbox.calls["Search"] == calls


def test_the_daily_quota_stops_cleanly_and_the_next_run_recovers(platform) -> None:
    defs, instance, registry, harness = platform
    harness.sandbox.faults.inject(AdsFault.DAILY_QUOTA, 1, method="SearchStream", skip=2)
    result = _run(defs, instance, MANAGER_CONNECTION)
    assert result.success  # what was read is loaded; the run says why it ends early
    assert _metadata(result)["google_ads_ad_daily"]["quota_exhausted"] is True
    connection = registry.get(MANAGER_CONNECTION)
    assert (connection.status, connection.status_detail) == ("erroring", "DailyQuotaExhausted")
    assert sum(len(c) for c in connection.sync_state["daily"].values()) == 2  # two slices completed before
    result = _run(defs, instance, MANAGER_CONNECTION)
    assert result.success and _metadata(result)["google_ads_ad_daily"]["quota_exhausted"] is False
    connection = registry.get(MANAGER_CONNECTION)
    assert connection.status == "active"
    cursors = connection.sync_state["daily"]["google_ads_ad_daily"]
    assert harness.count("google_ads_ad_daily") == _expected_ad_rows(harness, cursors)


def test_disconnect_erases_the_connections_rows_and_only_them(platform, tmp_path: Path) -> None:
    import duckdb

    from pipelines.connections.disconnect import disconnect
    from pipelines.google_ads.settings import DATASET_NAME, TABLES
    from pipelines.privacy.audit import AuditLog
    from pipelines.privacy.dsr import process_pending
    from pipelines.privacy.requests import Inbox

    defs, instance, registry, harness = platform
    assert _run(defs, instance, MANAGER_CONNECTION).success and _run(defs, instance, CLIENT_CONNECTION).success
    held = {t: harness.query(f"SELECT connection_id, count(*) FROM {DATASET_NAME}.{t} GROUP BY 1") for t in TABLES}
    client_rows = {f"{DATASET_NAME}.{t}": dict(rows)[CLIENT_CONNECTION] for t, rows in held.items()}
    inbox = Inbox(tmp_path / "privacy" / "requests.sqlite")
    request_id = disconnect(registry, inbox, CLIENT_CONNECTION, requested_by="test")
    keyring = defs.resources["keyring"]
    with keyring.open() as cipher, duckdb.connect(str(harness.warehouse)) as con:
        report = process_pending(con, cipher, inbox, AuditLog.of(tmp_path / "privacy" / "audit.jsonl", cipher),
                                 exports_dir=tmp_path / "exports", landing_urls={})
    assert report.rows_by_table == client_rows
    assert inbox.get(request_id)["status"] == "completed"
    assert registry.get(CLIENT_CONNECTION).status == "revoked"
    for table, rows in held.items():
        assert harness.query(f"SELECT connection_id, count(*) FROM {DATASET_NAME}.{table} GROUP BY 1") == [
            (c, n) for c, n in rows if c == MANAGER_CONNECTION]
