"""LinkedIn Ads: one dlt-backed asset per table, partitioned by connection, with checks.

A partition is one connected LinkedIn member (the registry's connection id); the shared connections sensor keeps
the partitions in step with the registry and the hourly schedule syncs every syncable connection
(`assets.connections`). Each materialisation carries its table's rows inserted / updated and the connection's
HTTP requests, retries and rate-limit waits. The cursors are saved only after dlt has loaded; an expired token
leaves the connection `needs_reauth` and the run fails without a retry (`sync_guard`).
"""

import dlt
from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetExecutionContext,
    AssetKey,
    MaterializeResult,
    asset_check,
)
from dagster_dlt import DagsterDltResource, dlt_assets

from assets.connections import (
    ConnectedProvider,
    connection_job,
    connection_partitions,
    hourly_schedule,
    sync_guard,
    syncable,
)
from assets.translator import WarehouseTranslator
from pipelines import paths
from pipelines.linkedin_ads import settings
from pipelines.linkedin_ads.sandbox import seed_connections
from pipelines.linkedin_ads.source import linkedin_ads_source
from pipelines.linkedin_ads.sync import new_sync
from pipelines.sql import ident
from pipelines.warehouse import finish_pending, table_exists
from resources.connections import ConnectionsResource
from resources.keyring import KeyringResource
from resources.linkedin_ads import LinkedInAdsResource
from resources.warehouse import WAREHOUSE_POOL, WarehouseResource

PROVIDER = "linkedin_ads"
LINKEDIN_ADS_CONNECTIONS = connection_partitions(PROVIDER)


@dlt_assets(
    dlt_source=linkedin_ads_source(None),
    dlt_pipeline=dlt.pipeline(pipeline_name=settings.SOURCE_NAME, destination="duckdb",
                              dataset_name=settings.DATASET_NAME, pipelines_dir=str(paths.dlt_dir())),
    name=PROVIDER,
    partitions_def=LINKEDIN_ADS_CONNECTIONS,
    dagster_dlt_translator=WarehouseTranslator(),
    pool=WAREHOUSE_POOL,
)
def linkedin_ads_assets(context: AssetExecutionContext, dlt_runner: DagsterDltResource, warehouse: WarehouseResource,
                        keyring: KeyringResource, connections: ConnectionsResource, linkedin_ads: LinkedInAdsResource):
    """Sync one connection: every entity, and the analytics of the lookback window (everything the first time)."""
    registry = connections.registry()
    connection = syncable(registry, context.partition_key)
    pipeline = warehouse.pipeline(settings.SOURCE_NAME, settings.DATASET_NAME)
    with keyring.open() as cipher, linkedin_ads.base_url() as base_url, sync_guard(registry, connection):
        recovered = finish_pending(pipeline)
        sync = new_sync(registry, cipher, connection, base_url, warehouse.path)
        results = list(dlt_runner.run(context=context, dlt_source=linkedin_ads_source(sync), dlt_pipeline=pipeline))
        registry.save_state(connection.connection_id, sync.state)
    for result in results:
        yield MaterializeResult(asset_key=result.asset_key, metadata={
            **(result.metadata or {}), **sync.report.as_metadata(result.asset_key.path[-1]),
            "recovered_loads": len(recovered)})


def _unique_keys_check(table: str):
    keys = [name for name, column in settings.TABLES[table].items() if column.get("primary_key")]

    @asset_check(asset=AssetKey([settings.DATASET_NAME, table]), name=f"{table}_unique_keys", pool=WAREHOUSE_POOL,
                 description=f"No ({', '.join(keys)}) is stored twice.")
    def unique_keys(context: AssetCheckExecutionContext, warehouse: WarehouseResource) -> AssetCheckResult:
        with warehouse.connect() as con:
            if not table_exists(con, settings.DATASET_NAME, table):
                return AssetCheckResult(passed=True, metadata={"rows": 0})
            rows, distinct = con.execute(
                f"SELECT count(*), count(DISTINCT ({', '.join(ident(k) for k in keys)})) "
                f"FROM {ident(settings.DATASET_NAME)}.{ident(table)}").fetchone()
        return AssetCheckResult(passed=rows == distinct, metadata={"rows": rows, "duplicate_rows": rows - distinct})

    return unique_keys


LINKEDIN_ADS_CHECKS = [_unique_keys_check(table) for table in settings.TABLES]
linkedin_ads_job = connection_job(PROVIDER, linkedin_ads_assets, LINKEDIN_ADS_CONNECTIONS,
                                  "Sync one LinkedIn Ads connection.")
LINKEDIN_ADS_PROVIDER = ConnectedProvider(PROVIDER, linkedin_ads_job, LINKEDIN_ADS_CONNECTIONS,
                                          lambda registry, cipher: seed_connections(registry, cipher))
LINKEDIN_ADS_SCHEDULES = [hourly_schedule(LINKEDIN_ADS_PROVIDER)]
