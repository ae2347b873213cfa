"""LinkedIn Ads in Dagster: a partition's sync through dagster-dlt with its counts as metadata and its checks,
a refused token that leaves the connection needing re-authorisation without a retry, the connections sensor
and hourly schedule, and the ad report's generic checks in the analytics job."""

from __future__ import annotations

import datetime as dt

from dagster import DagsterInstance, Definitions, build_schedule_context, build_sensor_context
from dagster_dlt import DagsterDltResource

from assets.ad_reporting import AD_REPORTING_CHECKS
from assets.analytics import ANALYTICS_ASSETS, analytics_job
from assets.connections import connections_sensor
from assets.linkedin_ads import (
    LINKEDIN_ADS_CHECKS,
    LINKEDIN_ADS_CONNECTIONS,
    LINKEDIN_ADS_PROVIDER,
    LINKEDIN_ADS_SCHEDULES,
    linkedin_ads_assets,
    linkedin_ads_job,
)
from pipelines.linkedin_ads import settings
from pipelines.linkedin_ads.sandbox import sandbox_data
from resources.connections import ConnectionsResource
from resources.keyring import KeyringResource
from resources.linkedin_ads import LinkedInAdsResource
from resources.warehouse import WarehouseResource
from tests.linkedin_ads.conftest import WS1, WS2, AdsPlatform


def _resources(ads: AdsPlatform, sandbox: bool = True) -> dict:
    return {
        "dlt_runner": DagsterDltResource(),
        "warehouse": WarehouseResource(path=str(ads.warehouse), dlt_dir=str(ads.root / "dlt"),
                                       work_dir=str(ads.root / "work")),
        "keyring": KeyringResource(master_key_file=str(ads.root / "keys" / "master.key"),
                                   keyring_path=str(ads.root / "keys" / "keyring.sqlite")),
        "connections": ConnectionsResource(connections_path=str(ads.root / "connections" / "connections.sqlite"),
                                           sandbox=sandbox),
        "linkedin_ads": LinkedInAdsResource(sandbox=sandbox),
    }


def _defs(ads: AdsPlatform) -> Definitions:
    return Definitions(assets=[linkedin_ads_assets, *ANALYTICS_ASSETS],
                       asset_checks=[*LINKEDIN_ADS_CHECKS, *AD_REPORTING_CHECKS],
                       jobs=[linkedin_ads_job, analytics_job], resources=_resources(ads))


def test_a_partition_syncs_with_counts_and_checks_and_feeds_the_checked_report(ads: AdsPlatform) -> None:
    # The resource's sandbox runs on the real clock with the sandbox's seed (the fixture's too): its tokens.
    data = sandbox_data()
    registry = ads.registry
    defs, instance = _defs(ads), DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(LINKEDIN_ADS_CONNECTIONS.name, [WS1])
    result = defs.resolve_job_def("linkedin_ads_sync_job").execute_in_process(instance=instance, partition_key=WS1)
    assert result.success
    checks = result.get_asset_check_evaluations()
    assert len(checks) == 6 and all(c.passed for c in checks)
    meta = {e.asset_key.path[-1]: {k: v.value for k, v in e.materialization.metadata.items()}
            for e in result.get_asset_materialization_events()}
    held = {table: ads.query(f"SELECT count(*) FROM {settings.DATASET_NAME}.{table}")[0][0] for table in settings.TABLES}
    assert {table: meta[table]["inserted"] for table in settings.TABLES} == held
    assert held[settings.ACCOUNTS] == 2 and held[settings.CREATIVES] == 16
    assert {m["http_requests"] for m in meta.values()} == {11}
    assert registry.get(WS1).status == "active" and set(registry.get(WS1).sync_state["analytics_end"]) == {
        str(a) for a in data.members[0].account_ids}

    report = defs.resolve_job_def("analytics_job").execute_in_process(instance=instance)
    assert report.success
    ad_checks = {(e.asset_key.path[-1], e.check_name): e.passed for e in report.get_asset_check_evaluations()
                 if e.check_name in ("totals_equal_raw_tables", "no_platform_missing_a_day")}
    assert ad_checks == {
        **{(f"ad_reporting__{grain}_report", "totals_equal_raw_tables"): True
           for grain in ("account", "campaign", "ad_group", "ad")},
        ("ad_reporting__account_report", "no_platform_missing_a_day"): True}
    rows = ads.query("SELECT count(*), count(DISTINCT account_id) FROM analytics.ad_reporting__ad_report")[0]
    assert rows == (held[settings.CREATIVE_ANALYTICS], 2)


def test_a_refused_token_needs_reauthorisation_and_is_not_retried(ads: AdsPlatform) -> None:
    with ads.keyring() as cipher:  # a token LinkedIn no longer knows
        ads.registry.reauthorise(cipher, WS2, refresh_token=None, access_token="expired-token")
    defs, instance = _defs(ads), DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(LINKEDIN_ADS_CONNECTIONS.name, [WS2])
    result = defs.resolve_job_def("linkedin_ads_sync_job").execute_in_process(
        instance=instance, partition_key=WS2, raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert "needs re-authorisation" in failure.step_failure_data.error.message
    assert (ads.registry.get(WS2).status, ads.registry.get(WS2).status_detail) == (
        "needs_reauth", "LinkedIn answered 401 EXPIRED_ACCESS_TOKEN")


def test_the_sensor_and_schedule_cover_the_linkedin_connections(ads: AdsPlatform, tmp_path) -> None:
    instance = DagsterInstance.local_temp(str(tmp_path))  # a schedule context needs an instance on disk
    resources = {name: r for name, r in _resources(ads, sandbox=False).items() if name in ("connections", "keyring")}
    result = connections_sensor([LINKEDIN_ADS_PROVIDER])(build_sensor_context(instance=instance, resources=resources))
    assert sorted((r.job_name, r.partition_key) for r in result.run_requests) == [
        ("linkedin_ads_sync_job", WS1), ("linkedin_ads_sync_job", WS2)]
    instance.add_dynamic_partitions(LINKEDIN_ADS_CONNECTIONS.name, [WS1, WS2])
    ads.registry.mark_needs_reauth(WS2, "LinkedIn answered 401")
    context = build_schedule_context(instance=instance, resources=resources,
                                     scheduled_execution_time=dt.datetime(2026, 12, 2, 5, tzinfo=dt.timezone.utc))
    assert [r.partition_key for r in LINKEDIN_ADS_SCHEDULES[0](context)] == [WS1]
