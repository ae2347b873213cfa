"""LinkedIn Ads: one dlt-backed asset per table, partitioned by connection, with checks.

A partition is one connected LinkedIn member (the registry's connection id); the shared connections sensor keeps
the partitions in step with the registry and the hourly schedule syncs every syncable connection
(`assets.connections`). Each materialisation carries its table's rows inserted / updated and the connection's
HTTP requests, retries and rate-limit waits. The cursors are saved only after dlt has loaded; an expired token
leaves the connection `needs_reauth` and the run fails without a retry (`sync_guard`).
"""

from contextlib import contextmanager
from typing import Iterator

from dagster import AssetKey

from assets.checks import unique_keys_check
from assets.connections import ConnectionSync, connected_provider, hourly_schedule
from pipelines.linkedin_ads import settings
from pipelines.linkedin_ads.sandbox import seed_connections
from pipelines.linkedin_ads.source import linkedin_ads_source
from pipelines.linkedin_ads.sync import new_sync
from resources.linkedin_ads import LinkedInAdsResource
from resources.warehouse import WarehouseResource

PROVIDER = "linkedin_ads"


@contextmanager
def _open_sync(linkedin_ads: LinkedInAdsResource, registry, cipher, connection,
               warehouse: WarehouseResource) -> Iterator[ConnectionSync]:
    """One member's sync from its cursors (everything the first time); the cursors are saved once loaded."""
    with linkedin_ads.base_url() as base_url:
        sync = new_sync(registry, cipher, connection, base_url, warehouse.path)
        yield ConnectionSync(linkedin_ads_source(sync), sync.report.as_metadata)
        registry.save_state(connection.connection_id, sync.state)


LINKEDIN_ADS_PROVIDER = connected_provider(
    PROVIDER, spec_source=linkedin_ads_source(None), source_name=settings.SOURCE_NAME, dataset=settings.DATASET_NAME,
    resource_key="linkedin_ads", open_sync=_open_sync,
    description="Sync one connection: every entity, and the analytics of the lookback window (everything the "
                "first time).",
    job_description="Sync one LinkedIn Ads connection.",
    seed_sandbox=lambda registry, cipher: seed_connections(registry, cipher))
linkedin_ads_assets, linkedin_ads_job = LINKEDIN_ADS_PROVIDER.assets, LINKEDIN_ADS_PROVIDER.job
LINKEDIN_ADS_CONNECTIONS = LINKEDIN_ADS_PROVIDER.partitions


def _keys(table: str) -> list[str]:
    return [name for name, column in settings.TABLES[table].items() if column.get("primary_key")]


LINKEDIN_ADS_CHECKS = [unique_keys_check(AssetKey([settings.DATASET_NAME, table]), settings.DATASET_NAME, table,
                                         _keys(table)) for table in settings.TABLES]
LINKEDIN_ADS_SCHEDULES = [hourly_schedule(LINKEDIN_ADS_PROVIDER)]
