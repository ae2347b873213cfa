"""One connection's Google Ads sync with plain dlt (what the Dagster asset does through dagster-dlt): the
warehouse lock held throughout, pending packages of an interrupted run loaded first, the source run and loaded;
the caller saves `run.state` only after this returns."""

from __future__ import annotations

from pathlib import Path

import dlt

from pipelines.connections.report import SyncReport
from pipelines.google_ads import DATASET_NAME, GoogleAdsRun, google_ads_source
from pipelines.warehouse import finish_pending, warehouse_lock, warehouse_pipeline

PIPELINE_NAME = "google_ads"


def load(run: GoogleAdsRun, *, warehouse_path: str | Path, dlt_dir: str | Path,
         pipeline_name: str = PIPELINE_NAME) -> SyncReport:
    """Extract and load the run's connection; its cursors are in `run.state`, its counts in the report."""
    with warehouse_lock(warehouse_path, f"{pipeline_name} sync of {run.connection_id}"):
        pipeline: dlt.Pipeline = warehouse_pipeline(pipeline_name, DATASET_NAME, warehouse_path, dlt_dir)
        finish_pending(pipeline)
        try:
            pipeline.run(google_ads_source(run)).raise_on_failed_jobs()
        finally:
            run.api.close()
    return run.report
