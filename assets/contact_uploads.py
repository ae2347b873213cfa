"""Uploaded contact lists: one dlt-backed asset per table of the uploads (one run loads all three), with
checks, a sensor that starts a run when files land and the job `make run` runs.

Each materialisation of `uploaded_contacts` carries the run's counts: files loaded and rejected, rows read,
contacts loaded, duplicates dropped, rows quarantined, rows of erased people dropped.
"""

from pathlib import Path

from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetSelection,
    ConfigurableResource,
    DefaultSensorStatus,
    MaterializeResult,
    RunRequest,
    SensorEvaluationContext,
    SkipReason,
    define_asset_job,
    sensor,
)
from dagster_dlt import DagsterDltResource

from assets.checks import encrypted_check, unique_keys_check
from assets.translator import load, warehouse_dlt_assets
from pipelines import paths
from pipelines.contact_uploads import UploadRun, contact_uploads_source, landed_files
from pipelines.contact_uploads.settings import CONTACTS_TABLE, DATASET_NAME, SOURCE_NAME
from pipelines.mail_common.stage import WorkDatabase
from pipelines.warehouse import finish_pending
from pipelines.workspaces import known_workspaces
from resources.keyring import KeyringResource
from resources.warehouse import WarehouseResource


class UploadsResource(ConfigurableResource):
    """Where uploads land (GTG_CONTACTS_LANDING_URL, a folder) and which workspaces the platform knows."""

    landing: str = str(paths.contacts_landing_path())
    workspaces_path: str = str(paths.workspaces_path())
    connections_path: str = str(paths.connections_path())

    def known(self) -> frozenset[str]:
        return known_workspaces(self.workspaces_path, self.connections_path)


@warehouse_dlt_assets(contact_uploads_source(None), SOURCE_NAME, DATASET_NAME, name="contact_uploads")
def contact_uploads_assets(context: AssetExecutionContext, dlt_runner: DagsterDltResource,
                           warehouse: WarehouseResource, keyring: KeyringResource, uploads: UploadsResource):
    """Load every uploaded contact list that landed since the last run, once, whole."""
    pipeline = warehouse.pipeline(SOURCE_NAME, DATASET_NAME)
    with keyring.open() as cipher:
        recovered = finish_pending(pipeline)
        work = WorkDatabase(warehouse.work_dir, warehouse.path)
        try:
            run = UploadRun(Path(uploads.landing), cipher, work, known_workspaces=uploads.known())
            results = list(load(context, dlt_runner, contact_uploads_source(run), pipeline, warehouse))
        finally:
            work.close()
        run.remove_loaded()
    for result in results:
        extra = run.report.as_metadata() if result.asset_key.path[-1] == CONTACTS_TABLE else {}
        yield MaterializeResult(asset_key=result.asset_key, metadata={**(result.metadata or {}), **extra,
                                                                      "recovered_loads": len(recovered)})


CONTACTS_KEY = AssetKey([DATASET_NAME, CONTACTS_TABLE])
UPLOAD_ASSETS = [contact_uploads_assets]
UPLOAD_CHECKS = [
    unique_keys_check(CONTACTS_KEY, DATASET_NAME, CONTACTS_TABLE, ["workspace_id", "subject_ref"],
                      name="uploaded_contacts_one_row_per_person",
                      description="No person (blind index of their e-mail, else phone) is held twice in one workspace."),
    encrypted_check(CONTACTS_KEY, DATASET_NAME, CONTACTS_TABLE),
]
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
