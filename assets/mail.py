"""Gmail and Outlook: one dlt-backed asset per provider stream, partitioned by connection, with checks.

A partition is one connected account (the registry's connection id); the sensor keeps the two dynamic
partition sets in step with the registry (new connections are added and synced at once, revoked ones are
removed) and the hourly schedules sync every active connection. Each materialisation carries its stream's
rows inserted / updated / deleted, whether it was a full resync (first sync or expired cursor), and the
connection's HTTP requests and retries. Cursors are saved to the registry only after dlt has loaded.
"""

import dlt
from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetExecutionContext,
    AssetKey,
    AssetSelection,
    DefaultScheduleStatus,
    DefaultSensorStatus,
    DynamicPartitionsDefinition,
    Failure,
    MaterializeResult,
    RunRequest,
    ScheduleEvaluationContext,
    SensorEvaluationContext,
    SensorResult,
    asset_check,
    define_asset_job,
    schedule,
    sensor,
)
from dagster_dlt import DagsterDltResource, dlt_assets

from assets.checks import encrypted_check
from assets.translator import WarehouseTranslator
from pipelines import paths
from pipelines.gmail import gmail_source
from pipelines.gmail import settings as gmail
from pipelines.mail_common.session import commit, open_session
from pipelines.mail_common.stage import CONNECTION, Stream
from pipelines.outlook import outlook_source
from pipelines.outlook import settings as outlook
from pipelines.warehouse import finish_pending, table_exists
from resources.keyring import KeyringResource
from resources.mail import MailResource
from resources.warehouse import WAREHOUSE_POOL, WarehouseResource

GMAIL_CONNECTIONS = DynamicPartitionsDefinition(name="gmail_connections")
OUTLOOK_CONNECTIONS = DynamicPartitionsDefinition(name="outlook_connections")
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
                    keyring: KeyringResource, mail: MailResource):
        """Sync one connection: what changed since its cursors (everything the first time)."""
        registry = mail.registry()
        connection = registry.get(context.partition_key)
        if connection.status == "revoked":
            raise Failure(f"connection {connection.connection_id} is revoked: nothing to sync")
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
    return [unique_ids, *(encrypted_check(key, stream.dataset, table) for table in [stream.table, *children])]


STREAMS = (gmail.MESSAGES, gmail.CONTACTS, outlook.MESSAGES, outlook.CONTACTS)
MAIL_CHECKS = [check for stream in STREAMS for check in _checks(stream)]
MAIL_ASSETS = [gmail_assets, outlook_assets]

gmail_job = define_asset_job("gmail_sync_job", selection=AssetSelection.assets(gmail_assets),
                             partitions_def=GMAIL_CONNECTIONS, description="Sync one Gmail connection.")
outlook_job = define_asset_job("outlook_sync_job", selection=AssetSelection.assets(outlook_assets),
                               partitions_def=OUTLOOK_CONNECTIONS, description="Sync one Outlook connection.")
JOBS = {"gmail": gmail_job, "outlook": outlook_job}


@sensor(jobs=[gmail_job, outlook_job], minimum_interval_seconds=60, default_status=DefaultSensorStatus.RUNNING,
        description="Keeps the connection partitions in step with the registry; a new connection syncs at once.")
def mail_connections_sensor(context: SensorEvaluationContext, mail: MailResource, keyring: KeyringResource):
    if mail.sandbox:
        with keyring.open() as cipher:
            mail.ensure_sandbox_connections(cipher)
    registry = mail.registry()
    partition_requests, runs = [], []
    for provider, partitions in PARTITIONS.items():
        wanted = {c.connection_id for c in registry.list(provider)}
        have = set(context.instance.get_dynamic_partitions(partitions.name))
        added, removed = sorted(wanted - have), sorted(have - wanted)
        if added:
            partition_requests.append(partitions.build_add_request(added))
            runs += [RunRequest(partition_key=k, job_name=JOBS[provider].name, run_key=f"first-sync:{k}") for k in added]
        if removed:
            partition_requests.append(partitions.build_delete_request(removed))
    return SensorResult(run_requests=runs, dynamic_partitions_requests=partition_requests)


def _hourly(provider: str):
    @schedule(name=f"{provider}_hourly_sync", job=JOBS[provider], cron_schedule="0 * * * *",
              execution_timezone="UTC", default_status=DefaultScheduleStatus.RUNNING,
              description=f"Every hour, sync every active or erroring {provider} connection.")
    def hourly(context: ScheduleEvaluationContext, mail: MailResource):
        known = set(context.instance.get_dynamic_partitions(PARTITIONS[provider].name))
        return [RunRequest(partition_key=c.connection_id, run_key=f"{c.connection_id}:{context.scheduled_execution_time}")
                for c in mail.registry().list(provider) if c.connection_id in known]

    return hourly


MAIL_SCHEDULES = [_hourly("gmail"), _hourly("outlook")]
MAIL_SENSORS = [mail_connections_sensor]
MAIL_JOBS = [gmail_job, outlook_job]
