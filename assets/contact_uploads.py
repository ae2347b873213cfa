"""Uploaded contact lists: one dlt-backed asset per table of the uploads (one run loads all three), with
checks, a sensor that starts a run when files land and the job `make run` runs.

Each materialisation of `uploaded_contacts` carries the run's counts: files loaded and rejected, rows read,
contacts loaded, duplicates dropped, rows quarantined, rows of erased people dropped.
"""

from pathlib import Path

import dlt
from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetExecutionContext,
    AssetKey,
    AssetSelection,
    ConfigurableResource,
    DefaultSensorStatus,
    MaterializeResult,
    RunRequest,
    SensorEvaluationContext,
    SkipReason,
    asset_check,
    define_asset_job,
    sensor,
)
from dagster_dlt import DagsterDltResource, dlt_assets

from assets.checks import encrypted_check
from assets.translator import WarehouseTranslator
from pipelines import paths
from pipelines.contact_uploads import UploadRun, contact_uploads_source, landed_files
from pipelines.contact_uploads.settings import CONTACTS_TABLE, DATASET_NAME, SOURCE_NAME
from pipelines.mail_common.stage import WorkDatabase
from pipelines.warehouse import finish_pending, table_exists
from pipelines.workspaces import known_workspaces
from resources.keyring import KeyringResource
from resources.warehouse import WAREHOUSE_POOL, WarehouseResource


class UploadsResource(ConfigurableResource):
    """Where uploads land (GTG_CONTACTS_LANDING_URL, a folder) and which workspaces the platform knows."""

    landing: str = str(paths.contacts_landing_path())
    workspaces_path: str = str(paths.workspaces_path())
    connections_path: str = str(paths.connections_path())

    def known(self) -> frozenset[str]:
        return known_workspaces(self.workspaces_path, self.connections_path)


@dlt_assets(
    dlt_source=contact_uploads_source(None),
    dlt_pipeline=dlt.pipeline(pipeline_name=SOURCE_NAME, destination="duckdb", dataset_name=DATASET_NAME,
                              pipelines_dir=str(paths.dlt_dir())),
    name="contact_uploads",
    dagster_dlt_translator=WarehouseTranslator(),
    pool=WAREHOUSE_POOL,
)
def contact_uploads_assets(context: AssetExecutionContext, dlt_runner: DagsterDltResource,
                           warehouse: WarehouseResource, keyring: KeyringResource, uploads: UploadsResource):
    """Load every uploaded contact list that landed since the last run, once, whole."""
    pipeline = warehouse.pipeline(SOURCE_NAME, DATASET_NAME)
    with keyring.open() as cipher:
        recovered = finish_pending(pipeline)
        work = WorkDatabase(warehouse.work_dir, warehouse.path)
        try:
            run = UploadRun(Path(uploads.landing), cipher, work, known_workspaces=uploads.known())
            results = list(dlt_runner.run(context=context, dlt_source=contact_uploads_source(run),
                                          dlt_pipeline=pipeline))
        finally:
            work.close()
        run.remove_loaded()
    for result in results:
        extra = run.report.as_metadata() if result.asset_key.path[-1] == CONTACTS_TABLE else {}
        yield MaterializeResult(asset_key=result.asset_key, metadata={**(result.metadata or {}), **extra,
                                                                      "recovered_loads": len(recovered)})


@asset_check(asset=AssetKey([DATASET_NAME, CONTACTS_TABLE]), name="uploaded_contacts_one_row_per_person",
             pool=WAREHOUSE_POOL, description="No person (blind index of their e-mail, else phone) is held twice "
             "in one workspace.")
def one_row_per_person(context: AssetCheckExecutionContext, warehouse: WarehouseResource) -> AssetCheckResult:
    with warehouse.connect() as con:
        if not table_exists(con, DATASET_NAME, CONTACTS_TABLE):
            return AssetCheckResult(passed=True, metadata={"rows": 0})
        rows, people = con.execute(f"SELECT count(*), count(DISTINCT (workspace_id, subject_ref)) "
                                   f"FROM {DATASET_NAME}.{CONTACTS_TABLE}").fetchone()
    return AssetCheckResult(passed=rows == people, metadata={"rows": rows, "duplicate_rows": rows - people})


UPLOAD_ASSETS = [contact_uploads_assets]
UPLOAD_CHECKS = [one_row_per_person, encrypted_check(AssetKey([DATASET_NAME, CONTACTS_TABLE]), DATASET_NAME,
                                                     CONTACTS_TABLE)]
uploads_job = define_asset_job("contact_uploads_job", selection=AssetSelection.assets(contact_uploads_assets),
                               description="Load the contact lists uploaded since the last run.")


@sensor(job=uploads_job, minimum_interval_seconds=60, default_status=DefaultSensorStatus.RUNNING,
        description="Starts a load when uploaded contact lists are waiting in the landing zone.")
def contact_uploads_sensor(context: SensorEvaluationContext, uploads: UploadsResource):
    files = landed_files(Path(uploads.landing))
    if not files:
        return SkipReason("no uploaded contact list is waiting")
    newest = max(f.stat().st_mtime for f in files)
    return RunRequest(run_key=f"uploads:{len(files)}:{newest}")
