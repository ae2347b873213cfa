"""Meta (Facebook) ads: one dlt-backed asset per table of an ad account, partitioned by connection, with checks.

A partition is one connected ad account; the connections sensor adds new ones and starts their first sync, the
hourly schedule syncs every active one (`assets.connections`). A run materialises the account's structure,
its daily ad insights (the last 28 days re-read) and its lead forms and leads; each materialisation carries
the table's rows inserted / updated, whether it was a full sync, and the connection's requests, retries and
rate-limit waits. A token Meta refuses (code 190) fails the run with "needs re-authorisation" and takes the
connection off the schedule until the user reconnects. Cursors are saved only after dlt has loaded.
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

from assets.connections import ConnectedProvider, connection_job, connection_partitions, hourly_schedule, sync_guard, syncable
from assets.stream_checks import stream_checks
from assets.translator import WarehouseTranslator
from pipelines import paths
from pipelines.facebook import facebook_source
from pipelines.facebook import settings as facebook
from pipelines.facebook.sandbox import sandbox_world, seed_connections
from pipelines.mail_common.session import commit, open_session
from pipelines.sql import qualified
from pipelines.warehouse import finish_pending, table_exists
from resources.connections import ConnectionsResource
from resources.facebook import FacebookResource
from resources.keyring import KeyringResource
from resources.warehouse import WAREHOUSE_POOL, WarehouseResource

FACEBOOK_CONNECTIONS = connection_partitions(facebook.PROVIDER)


@dlt_assets(
    dlt_source=facebook_source(None),
    dlt_pipeline=dlt.pipeline(pipeline_name=facebook.SOURCE_NAME, destination="duckdb",
                              dataset_name=facebook.DATASET_NAME, pipelines_dir=str(paths.dlt_dir())),
    name=facebook.PROVIDER,
    partitions_def=FACEBOOK_CONNECTIONS,
    dagster_dlt_translator=WarehouseTranslator(),
    pool=WAREHOUSE_POOL,
)
def facebook_ads_assets(context: AssetExecutionContext, dlt_runner: DagsterDltResource, warehouse: WarehouseResource,
                        keyring: KeyringResource, facebook_ads: FacebookResource, connections: ConnectionsResource):
    """Sync one ad account: structure, insights from the lookback on, new leads."""
    registry = connections.registry()
    connection = syncable(registry, context.partition_key)
    pipeline = warehouse.pipeline(facebook.SOURCE_NAME, facebook.DATASET_NAME)
    with keyring.open() as cipher, facebook_ads.endpoint() as endpoint, sync_guard(registry, connection):
        recovered = finish_pending(pipeline)
        account_id = registry.account(cipher, connection)
        with open_session(registry, cipher, connection, endpoint, None, warehouse_path=warehouse.path,
                          work_dir=warehouse.work_dir) as session:
            results = list(dlt_runner.run(context=context, dlt_source=facebook_source(session, account_id),
                                          dlt_pipeline=pipeline))
            commit(registry, session)
    for result in results:
        yield MaterializeResult(asset_key=result.asset_key, metadata={
            **(result.metadata or {}), **session.report.as_metadata(result.asset_key.path[-1]),
            "recovered_loads": len(recovered)})


INSIGHTS_KEY = AssetKey([facebook.DATASET_NAME, facebook.INSIGHTS_TABLE])


@asset_check(asset=INSIGHTS_KEY, name="ad_insights_days_within_account_calendar", pool=WAREHOUSE_POOL,
             description="No insights day after the ad account's today in its own time zone (a day computed in "
                         "UTC would run ahead east of UTC) nor beyond the 37 months Meta serves.")
def insights_days(context: AssetCheckExecutionContext, warehouse: WarehouseResource) -> AssetCheckResult:
    insights = qualified(f"{facebook.DATASET_NAME}.{facebook.INSIGHTS_TABLE}")
    accounts = qualified(f"{facebook.DATASET_NAME}.{facebook.ACCOUNTS_TABLE}")
    with warehouse.connect() as con:
        if not table_exists(con, facebook.DATASET_NAME, facebook.INSIGHTS_TABLE):
            return AssetCheckResult(passed=True, metadata={"rows": 0})
        future, ancient = con.execute(
            f"SELECT count_if(i.date_day > CAST(timezone(a.timezone_name, now()) AS DATE)), "
            f"count_if(i.date_day < CAST(timezone(a.timezone_name, now()) AS DATE) - INTERVAL {facebook.HISTORY_MONTHS} MONTH "
            f"- INTERVAL 1 DAY) FROM {insights} i JOIN {accounts} a USING (connection_id, account_id)").fetchone()
    return AssetCheckResult(passed=future == 0 and ancient == 0,
                            metadata={"days_after_today": future, "days_beyond_37_months": ancient})


FACEBOOK_ASSETS = [facebook_ads_assets]
FACEBOOK_CHECKS = [*(check for stream in facebook.STREAMS for check in stream_checks(stream)), insights_days]
facebook_job = connection_job(facebook.PROVIDER, facebook_ads_assets, FACEBOOK_CONNECTIONS,
                              "Sync one Meta (Facebook) ad account.")


def _seed_facebook(registry, cipher) -> None:
    """The sandbox's seeded Meta ad-account connections."""
    seed_connections(registry, cipher, sandbox_world(days=1))


FACEBOOK_PROVIDER = ConnectedProvider(facebook.PROVIDER, facebook_job, FACEBOOK_CONNECTIONS, _seed_facebook)
FACEBOOK_SCHEDULES = [hourly_schedule(FACEBOOK_PROVIDER)]
