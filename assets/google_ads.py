"""Google Ads: one dlt-backed asset per table, partitioned by connection, with checks beside them.

A partition is one connected Google Ads login (a manager and its clients, or one account); the connections
sensor keeps the partitions in step with the registry and the hourly schedule syncs every syncable connection
(`assets.connections`). Each materialisation carries its table's rows inserted / updated, whether an entity
listing restarted after an expired page token (`cursor_expired`), the connection's requests and retries, and
`quota_exhausted` when the developer token's daily quota stopped the run (what was read is loaded, the cursors
say how far, the connection is `erroring` with DailyQuotaExhausted until the next run finishes). An expired or
revoked token fails the run without retry and leaves the connection `needs_reauth` (`sync_guard`).
"""

from contextlib import contextmanager
from typing import Iterator

from dagster import AssetCheckExecutionContext, AssetCheckResult, AssetKey, asset_check

from assets.checks import unique_keys_check
from assets.connections import ConnectionSync, connected_provider, hourly_schedule
from pipelines.google_ads import google_ads_source, utc_now
from pipelines.google_ads import settings as google_ads
from pipelines.google_ads.connect import open_run, record_loaded
from pipelines.google_ads.sandbox import seed_connections
from pipelines.google_ads.windows import local_yesterday
from pipelines.sql import qualified
from pipelines.warehouse import table_exists
from resources.google_ads import GoogleAdsResource
from resources.warehouse import WAREHOUSE_POOL, WarehouseResource


@contextmanager
def _open_sync(app: GoogleAdsResource, registry, cipher, connection,
               warehouse: WarehouseResource) -> Iterator[ConnectionSync]:
    """One login's run from its cursors; once loaded, its cursors, a refreshed token and a quota stop are saved."""
    with app.endpoint() as endpoint:
        access_token = registry.tokens(cipher, connection).access_token
        run = open_run(registry, cipher, connection, app.app(), endpoint=endpoint, options=app.options(),
                       warehouse_path=warehouse.path)
        sync = ConnectionSync(google_ads_source(run), lambda table: {
            **run.report.as_metadata(table), "quota_exhausted": run.stopped is not None})
        try:
            yield sync
        finally:
            run.api.close()
        record_loaded(registry, cipher, connection, run, access_token)
        sync.stopped = run.stopped


GOOGLE_ADS_PROVIDER = connected_provider(
    google_ads.PROVIDER, spec_source=google_ads_source(None), source_name=google_ads.SOURCE_NAME,
    dataset=google_ads.DATASET_NAME, resource_key="google_ads", open_sync=_open_sync,
    description="Sync one connection: its accounts and campaign structure, and the daily reports from the day "
                "after the cursors (or the conversion window back) up to each account's yesterday.",
    job_description="Sync one Google Ads connection.", seed_sandbox=seed_connections)
google_ads_assets, google_ads_job = GOOGLE_ADS_PROVIDER.assets, GOOGLE_ADS_PROVIDER.job
GOOGLE_ADS_CONNECTIONS = GOOGLE_ADS_PROVIDER.partitions


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
    *(unique_keys_check(AssetKey([google_ads.DATASET_NAME, s.table]), google_ads.DATASET_NAME, s.table, s.primary_key)
      for s in google_ads.STREAMS),
    *(_complete_days_only(s) for s in google_ads.DAILY_STREAMS),
]
GOOGLE_ADS_SCHEDULES = [hourly_schedule(GOOGLE_ADS_PROVIDER)]
