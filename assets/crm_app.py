"""The CRM app database: one dlt-backed asset per app table (one sync loads them all), with checks.

Each materialisation carries the table's rows read since the cursor, rows deleted (soft-deleted in the app)
and rows dropped as belonging to erased people; the sync's run also reports the erasure requests it filed for
closed accounts. When the removal guard refused a table's removals (more than a share of its rows gone from
the app at once, `pipelines.crm_app.removed`), the table's materialisation says how many rows it kept
(`rows_removal_refused`, `removal_guard`) and the run fails with the guard's message, after loading the rest.
Policy promise 1 is a check here: no text value anywhere in the warehouse looks like a payment card number.
"""

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetExecutionContext,
    AssetKey,
    AssetSelection,
    DefaultScheduleStatus,
    Failure,
    MaterializeResult,
    ScheduleDefinition,
    asset_check,
    define_asset_job,
)
from dagster_dlt import DagsterDltResource

from assets.checks import encrypted_check, unique_keys_check
from assets.translator import load, warehouse_dlt_assets
from pipelines.crm_app import RemovalsRefused, crm_app_source, open_sync, recover
from pipelines.crm_app.settings import APP_TABLES, DATASET_NAME, SOURCE_NAME
from pipelines.privacy.scan import card_number_values
from resources.crm_app import CrmAppResource
from resources.keyring import KeyringResource
from resources.privacy import PrivacyResource
from resources.warehouse import WAREHOUSE_POOL, WarehouseResource


@warehouse_dlt_assets(crm_app_source(None), SOURCE_NAME, DATASET_NAME, name="crm_app")
def crm_app_assets(context: AssetExecutionContext, dlt_runner: DagsterDltResource, warehouse: WarehouseResource,
                   keyring: KeyringResource, crm_app: CrmAppResource, privacy: PrivacyResource):
    """Sync the app database: every row changed since the last sync (everything the first time)."""
    pipeline = warehouse.pipeline(SOURCE_NAME, DATASET_NAME)
    with keyring.open() as cipher:
        recovered = recover(pipeline)
        with open_sync(crm_app.url(), cipher, warehouse_path=warehouse.path, work_dir=warehouse.work_dir,
                       guard=crm_app.removal_guard()) as app:
            results = list(load(context, dlt_runner, crm_app_source(app), pipeline, warehouse))
            filed = app.finish(privacy.inbox(), crm_app.registry())
    refused = {r.table for r in app.refused}
    for result in results:
        table = result.asset_key.path[-1]
        yield MaterializeResult(asset_key=result.asset_key, metadata={
            **(result.metadata or {}), **app.counts[table].as_metadata(),
            "removal_guard": "refused: needs attention" if table in refused else "passed",
            **({"erasure_requests_filed": filed} if table == "users" else {}), "recovered_loads": len(recovered)})
    try:
        app.raise_refused()
    except RemovalsRefused as refusal:
        raise Failure(description=str(refusal), metadata={
            "tables_refused": ", ".join(sorted(refused)),
            "rows_removal_refused": sum(r.missing for r in refusal.refusals)}) from None


def _checks(table_name: str, key_column: str):
    key = AssetKey([DATASET_NAME, table_name])
    return [unique_keys_check(key, DATASET_NAME, table_name, [key_column]),
            encrypted_check(key, DATASET_NAME, table_name)]


@asset_check(asset=AssetKey([DATASET_NAME, "billing_profiles"]), name="no_payment_card_numbers", pool=WAREHOUSE_POOL,
             description="Privacy policy promise 1: no text value anywhere in the warehouse looks like a payment card "
             "number (13 to 19 digits passing the Luhn check, with or without separators). Billing profiles keep "
             "only the brand, the last four digits and the expiry, encrypted.")
def no_payment_card_numbers(context: AssetCheckExecutionContext, warehouse: WarehouseResource) -> AssetCheckResult:
    with warehouse.connect() as con:
        found = card_number_values(con)
    return AssetCheckResult(passed=not found, metadata={"columns_with_card_numbers": len(found),
                                                        "values": sum(found.values()),
                                                        "where": ", ".join(sorted(found)) or "none"})


CRM_APP_ASSETS = [crm_app_assets]
CRM_APP_CHECKS = [check for table in APP_TABLES for check in _checks(table.name, table.key)] + [no_payment_card_numbers]
crm_app_job = define_asset_job("crm_app_sync_job", selection=AssetSelection.assets(crm_app_assets),
                               description="Sync the CRM app database.")
crm_app_schedule = ScheduleDefinition(name="crm_app_hourly_sync", job=crm_app_job, cron_schedule="30 * * * *",
                                      execution_timezone="UTC", default_status=DefaultScheduleStatus.RUNNING,
                                      description="Every hour at :30, sync what changed in the CRM app database.")
