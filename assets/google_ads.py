"""Google Ads: one dlt-backed asset per table, partitioned by connection, with checks beside them.

A partition is one connected Google Ads login (a manager and its clients, or one account); the connections
sensor keeps the partitions in step with the registry and the hourly schedule syncs every syncable connection
(`assets.connections`). Each materialisation carries its table's rows inserted / updated, whether an entity
listing restarted after an expired page token (`cursor_expired`), the connection's requests and retries, and
`quota_exhausted` when the developer token's daily quota stopped the run (what was read is loaded, the cursors
say how far, the connection is `erroring` with DailyQuotaExhausted until the next run finishes). An expired or
revoked token fails the run without retry and leaves the connection `needs_reauth` (`sync_guard`).
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
from pipelines.google_ads import google_ads_source, utc_now
from pipelines.google_ads import settings as google_ads
from pipelines.google_ads.connect import open_run, record_loaded
from pipelines.google_ads.sandbox import seed_connections
from pipelines.google_ads.windows import local_yesterday
from pipelines.sql import ident, qualified
from pipelines.warehouse import finish_pending, table_exists
from resources.connections import ConnectionsResource
from resources.google_ads import GoogleAdsResource
from resources.keyring import KeyringResource
from resources.warehouse import WAREHOUSE_POOL, WarehouseResource

GOOGLE_ADS_CONNECTIONS = connection_partitions(google_ads.PROVIDER)


@dlt_assets(
    dlt_source=google_ads_source(None),
    dlt_pipeline=dlt.pipeline(pipeline_name=google_ads.SOURCE_NAME, destination="duckdb",
                              dataset_name=google_ads.DATASET_NAME, pipelines_dir=str(paths.dlt_dir())),
    name=google_ads.PROVIDER,
    partitions_def=GOOGLE_ADS_CONNECTIONS,
    dagster_dlt_translator=WarehouseTranslator(),
    pool=WAREHOUSE_POOL,
)
def google_ads_assets(context: AssetExecutionContext, dlt_runner: DagsterDltResource, warehouse: WarehouseResource,
                      keyring: KeyringResource, google_ads_app: GoogleAdsResource, connections: ConnectionsResource):
    """Sync one connection: its accounts and campaign structure, and the daily reports from the day after the
    cursors (or the conversion window back) up to each account's yesterday."""
    registry = connections.registry()
    connection = syncable(registry, context.partition_key)
    pipeline = warehouse.pipeline(google_ads.SOURCE_NAME, google_ads.DATASET_NAME)
    with keyring.open() as cipher, google_ads_app.endpoint() as endpoint, sync_guard(registry, connection):
        recovered = finish_pending(pipeline)
        access_token = registry.tokens(cipher, connection).access_token
        run = open_run(registry, cipher, connection, google_ads_app.app(), endpoint=endpoint,
                       options=google_ads_app.options(), warehouse_path=warehouse.path)
        try:
            results = list(dlt_runner.run(context=context, dlt_source=google_ads_source(run), dlt_pipeline=pipeline))
        finally:
            run.api.close()
        record_loaded(registry, cipher, connection, run, access_token)
    if run.stopped:
        context.log.warning(f"connection {connection.connection_id}: {run.stopped}")
    for result in results:
        yield MaterializeResult(asset_key=result.asset_key, metadata={
            **(result.metadata or {}), **run.report.as_metadata(result.asset_key.path[-1]),
            "quota_exhausted": run.stopped is not None, "recovered_loads": len(recovered)})


def _unique_keys(stream: google_ads.Stream):
    @asset_check(asset=AssetKey([google_ads.DATASET_NAME, stream.table]), name=f"{stream.table}_unique_keys",
                 pool=WAREHOUSE_POOL, description=f"No ({', '.join(stream.primary_key)}) is stored twice.")
    def unique_keys(context: AssetCheckExecutionContext, warehouse: WarehouseResource) -> AssetCheckResult:
        with warehouse.connect() as con:
            if not table_exists(con, google_ads.DATASET_NAME, stream.table):
                return AssetCheckResult(passed=True, metadata={"rows": 0})
            key = ", ".join(ident(k) for k in stream.primary_key)
            rows, distinct = con.execute(f"SELECT count(*), count(DISTINCT ({key})) "
                                         f"FROM {qualified(f'{google_ads.DATASET_NAME}.{stream.table}')}").fetchone()
        return AssetCheckResult(passed=rows == distinct, metadata={"rows": rows, "duplicate_rows": rows - distinct})

    return unique_keys


def _complete_days_only(stream: google_ads.Stream):
    @asset_check(asset=AssetKey([google_ads.DATASET_NAME, stream.table]), name=f"{stream.table}_complete_days_only",
                 pool=WAREHOUSE_POOL,
                 description="No day after yesterday in its account's time zone: today's numbers are still being "
                             "counted and are never loaded.")
    def complete_days_only(context: AssetCheckExecutionContext, warehouse: WarehouseResource) -> AssetCheckResult:
        customers = f"{google_ads.DATASET_NAME}.{google_ads.CUSTOMERS_TABLE}"
        with warehouse.connect() as con:
            if not table_exists(con, google_ads.DATASET_NAME, stream.table):
                return AssetCheckResult(passed=True, metadata={"rows_after_yesterday": 0})
            latest = con.execute(
                f"SELECT d.customer_id, c.time_zone, max(d.date) FROM {qualified(f'{google_ads.DATASET_NAME}.{stream.table}')} d "
                f"JOIN {qualified(customers)} c ON c.connection_id = d.connection_id AND c.customer_id = d.customer_id "
                "GROUP BY ALL").fetchall()
        now = utc_now()
        late = [customer for customer, time_zone, last in latest if last > local_yesterday(now, time_zone)]
        return AssetCheckResult(passed=not late, metadata={"accounts": len(latest), "accounts_past_yesterday": len(late)})

    return complete_days_only


GOOGLE_ADS_CHECKS = [
    *(_unique_keys(s) for s in google_ads.STREAMS),
    *(_complete_days_only(s) for s in google_ads.DAILY_STREAMS),
]
google_ads_job = connection_job(google_ads.PROVIDER, google_ads_assets, GOOGLE_ADS_CONNECTIONS,
                                "Sync one Google Ads connection.")
GOOGLE_ADS_PROVIDER = ConnectedProvider(google_ads.PROVIDER, google_ads_job, GOOGLE_ADS_CONNECTIONS, seed_connections)
GOOGLE_ADS_SCHEDULES = [hourly_schedule(GOOGLE_ADS_PROVIDER)]
