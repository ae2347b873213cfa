"""Meta (Facebook) ads: one dlt-backed asset per table of an ad account, partitioned by connection, with checks.

A partition is one connected ad account; the connections sensor adds new ones and starts their first sync, the
hourly schedule syncs every active one (`assets.connections`). A run materialises the account's structure,
its daily ad insights (the last 28 days re-read) and its lead forms and leads; each materialisation carries
the table's rows inserted / updated, whether it was a full sync, and the connection's requests, retries and
rate-limit waits. A big account's insights load in pieces of bounded size, one dlt load after another in the
same run, each saving its cursors (a crash between pieces resumes after the last loaded one); the metadata sums
the pieces and says how many loads the run took. A token Meta refuses (code 190) fails the run with "needs
re-authorisation" and takes the connection off the schedule until the user reconnects. Cursors are saved only
after dlt has loaded.
"""

from contextlib import closing, contextmanager
from typing import Iterator

from dagster import AssetCheckExecutionContext, AssetCheckResult, AssetKey, asset_check

from assets.connections import ConnectionSync, connected_provider, hourly_schedule
from assets.stream_checks import stream_checks
from pipelines.facebook import facebook_source
from pipelines.facebook import settings as facebook
from pipelines.facebook.sandbox import sandbox_world, seed_connections
from pipelines.facebook.sync import SyncPieces
from pipelines.sql import qualified
from pipelines.warehouse import table_exists
from resources.facebook import FacebookResource
from resources.warehouse import WAREHOUSE_POOL, WarehouseResource


@contextmanager
def _open_sync(facebook_ads: FacebookResource, registry, cipher, connection,
               warehouse: WarehouseResource) -> Iterator[ConnectionSync]:
    """One ad account's sync, piece after piece in this run (`SyncPieces`: each piece's cursors are saved once
    it is loaded); the figures sum every piece."""
    with facebook_ads.endpoint() as endpoint:
        pieces = SyncPieces(registry, cipher, connection, endpoint, warehouse_path=warehouse.path,
                            work_dir=warehouse.work_dir, piece_rows=facebook_ads.piece_rows)
        with closing(pieces.sources()) as sources:
            yield ConnectionSync(next(sources), lambda table: pieces.report.as_metadata(table), more=sources)


def _seed_facebook(registry, cipher) -> None:
    """The sandbox's seeded Meta ad-account connections."""
    seed_connections(registry, cipher, sandbox_world(days=1))


FACEBOOK_PROVIDER = connected_provider(
    facebook.PROVIDER, spec_source=facebook_source(None), source_name=facebook.SOURCE_NAME,
    dataset=facebook.DATASET_NAME, resource_key="facebook_ads", open_sync=_open_sync,
    description="Sync one ad account: structure, insights from the lookback on, new leads.",
    job_description="Sync one Meta (Facebook) ad account.", seed_sandbox=_seed_facebook,
    load_memory_limit=facebook.LOAD_MEMORY_LIMIT)
FACEBOOK_CONNECTIONS, facebook_job = FACEBOOK_PROVIDER.partitions, FACEBOOK_PROVIDER.job


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


FACEBOOK_ASSETS = [FACEBOOK_PROVIDER.assets]
FACEBOOK_CHECKS = [*(check for stream in facebook.STREAMS for check in stream_checks(stream)), insights_days]
FACEBOOK_SCHEDULES = [hourly_schedule(FACEBOOK_PROVIDER)]
