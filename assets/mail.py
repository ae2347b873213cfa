"""Gmail and Outlook: one dlt-backed asset per provider stream, partitioned by connection, with checks.

A partition is one connected account (the registry's connection id); the connections sensor keeps the two
dynamic partition sets in step with the registry (new connections are added and synced at once, revoked ones
are removed) and the hourly schedules sync every active connection (`assets.connections`). Each materialisation carries its stream's
rows inserted / updated / deleted, whether it was a full resync (first sync or expired cursor), and the
connection's HTTP requests and retries. Cursors are saved to the registry only after dlt has loaded.
"""

import dlt
from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetExecutionContext,
    AssetKey,
    DynamicPartitionsDefinition,
    MaterializeResult,
    asset_check,
)
from dagster_dlt import DagsterDltResource, dlt_assets

from assets.connections import ConnectedProvider, connection_job, connection_partitions, hourly_schedule, syncable
from assets.translator import WarehouseTranslator
from pipelines import paths
from pipelines.gmail import gmail_source
from pipelines.gmail import settings as gmail
from pipelines.mail_common.sandbox import sandbox_accounts, seed_connections
from pipelines.mail_common.session import commit, open_session
from pipelines.mail_common.stage import CONNECTION, Stream
from pipelines.outlook import outlook_source
from pipelines.outlook import settings as outlook
from pipelines.privacy.categories import stored_tables
from pipelines.privacy.scan import unprotected_values
from pipelines.warehouse import finish_pending, table_exists
from resources.connections import ConnectionsResource
from resources.keyring import KeyringResource
from resources.mail import MailResource
from resources.warehouse import WAREHOUSE_POOL, WarehouseResource

GMAIL_CONNECTIONS = connection_partitions("gmail")
OUTLOOK_CONNECTIONS = connection_partitions("outlook")
PARTITIONS = {"gmail": GMAIL_CONNECTIONS, "outlook": OUTLOOK_CONNECTIONS}


def _provider_assets(provider: str, source, settings, partitions: DynamicPartitionsDefinition):
    @dlt_assets(
        dlt_source=source(None),
        dlt_pipeline=dlt.pipeline(pipeline_name=settings.SOURCE_NAME, destination="duckdb",
                                  dataset_name=settings.DATASET_NAME, pipelines_dir=str(paths.dlt_dir())),
        name=provider,
        partitions_def=partitions,
        dagster_dlt_translator=WarehouseTranslator(),
        pool=WAREHOUSE_POOL,
    )
    def sync_assets(context: AssetExecutionContext, dlt_runner: DagsterDltResource, warehouse: WarehouseResource,
                    keyring: KeyringResource, mail: MailResource, connections: ConnectionsResource):
        """Sync one connection: what changed since its cursors (everything the first time)."""
        registry = connections.registry()
        connection = syncable(registry, context.partition_key)
        pipeline = warehouse.pipeline(settings.SOURCE_NAME, settings.DATASET_NAME)
        with keyring.open() as cipher, mail.endpoints() as endpoints:
            recovered = finish_pending(pipeline)
            with open_session(registry, cipher, connection, endpoints, mail.oauth(), warehouse_path=warehouse.path,
                              work_dir=warehouse.work_dir) as session:
                results = list(dlt_runner.run(context=context, dlt_source=source(session), dlt_pipeline=pipeline))
                commit(registry, session)
        for result in results:
            yield MaterializeResult(asset_key=result.asset_key, metadata={
                **(result.metadata or {}), **session.report.as_metadata(result.asset_key.path[-1]),
                "recovered_loads": len(recovered)})

    return sync_assets


gmail_assets = _provider_assets("gmail", gmail_source, gmail, GMAIL_CONNECTIONS)
outlook_assets = _provider_assets("outlook", outlook_source, outlook, OUTLOOK_CONNECTIONS)


def _checks(stream: Stream):
    key = AssetKey([stream.dataset, stream.table])

    @asset_check(asset=key, name=f"{stream.table}_unique_ids", pool=WAREHOUSE_POOL,
                 description=f"No {stream.key} is stored twice for one connection.")
    def unique_ids(context: AssetCheckExecutionContext, warehouse: WarehouseResource) -> AssetCheckResult:
        with warehouse.connect() as con:
            if not table_exists(con, stream.dataset, stream.table):
                return AssetCheckResult(passed=True, metadata={"rows": 0})
            rows, distinct = con.execute(
                f'SELECT count(*), count(DISTINCT ({CONNECTION}, "{stream.key}")) '
                f'FROM "{stream.dataset}"."{stream.table}"').fetchone()
        return AssetCheckResult(passed=rows == distinct, metadata={"rows": rows, "duplicate_rows": rows - distinct})

    children = [stream.child.table] if stream.child else []
    return [unique_ids, *(_encrypted_check(key, stream.dataset, table) for table in [stream.table, *children])]


def _encrypted_check(key: AssetKey, dataset: str, table: str):
    """The check that `table` (loaded by the asset `key`: its own, or its parent stream's) holds no plaintext."""

    @asset_check(asset=key, name=f"{table}_personal_data_encrypted", pool=WAREHOUSE_POOL,
                 description=f"Every column of {table} declared as personal data (x-data-category in the stored "
                 "dlt schema) holds only ciphertext.")
    def encrypted(context: AssetCheckExecutionContext, warehouse: WarehouseResource) -> AssetCheckResult:
        with warehouse.connect() as con:
            tables = stored_tables(con, dataset)
            readable = (unprotected_values(con, dataset, table, tables[table])
                        if table in tables and table_exists(con, dataset, table) else {})
        return AssetCheckResult(passed=not any(readable.values()),
                                metadata={"columns_checked": len(readable), "readable_values": sum(readable.values())})

    return encrypted


STREAMS = (gmail.MESSAGES, gmail.CONTACTS, outlook.MESSAGES, outlook.CONTACTS)
MAIL_CHECKS = [check for stream in STREAMS for check in _checks(stream)]
MAIL_ASSETS = [gmail_assets, outlook_assets]

gmail_job = connection_job("gmail", gmail_assets, GMAIL_CONNECTIONS, "Sync one Gmail connection.")
outlook_job = connection_job("outlook", outlook_assets, OUTLOOK_CONNECTIONS, "Sync one Outlook connection.")
JOBS = {"gmail": gmail_job, "outlook": outlook_job}


def _seed_mail(registry, cipher) -> None:
    """The sandbox's seeded Gmail and Outlook connections (one seeder for both providers)."""
    seed_connections(registry, cipher, sandbox_accounts())


MAIL_PROVIDERS = [ConnectedProvider(provider, JOBS[provider], PARTITIONS[provider], _seed_mail) for provider in JOBS]
MAIL_SCHEDULES = [hourly_schedule(connected) for connected in MAIL_PROVIDERS]
MAIL_JOBS = [gmail_job, outlook_job]
