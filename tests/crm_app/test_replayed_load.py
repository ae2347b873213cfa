"""A sync interrupted after its rows were staged leaves a load package that the next sync finishes: the replayed
load job stages its rows a second time, and the merge (which takes staged rows as unique) would keep both
copies; `recover` keeps one row per key, so the mirror stays exact."""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb

from pipelines.crm_app import crm_app_source, open_sync
from pipelines.crm_app.settings import DATASET_NAME, SOURCE_NAME
from pipelines.warehouse import warehouse_pipeline
from tests.crm_app.conftest import AppPlatform
from tests.crm_app.test_app_source import ANN, T0, _contact, _seed


def _stage_twice(app: AppPlatform) -> None:
    """Extract and normalise a sync, then give its contacts job a second copy in the package (what a job
    replayed after a crash between its staging insert and its completion stages again)."""
    pipeline = warehouse_pipeline(SOURCE_NAME, DATASET_NAME, app.platform.warehouse, app.platform.dlt_dir)
    with app.platform.keyring() as cipher, open_sync(app.url, cipher, warehouse_path=app.platform.warehouse,
                                                     work_dir=app.platform.work_dir) as sync:
        pipeline.extract(crm_app_source(sync))
    pipeline.normalize()
    (package,) = Path(pipeline.working_dir, "load", "normalized").iterdir()
    (job,) = (package / "new_jobs").glob("contacts.*.parquet")
    table, _, retry, ext = job.name.split(".")
    shutil.copyfile(job, job.with_name(f"{table}.replayed0.{retry}.{ext}"))


def _keys(app: AppPlatform, table: str, key: str) -> list[str]:
    with duckdb.connect(str(app.platform.warehouse), read_only=True) as con:
        return [r[0] for r in con.sql(f"SELECT {key} FROM {DATASET_NAME}.{table} ORDER BY 1").fetchall()]


def test_a_replayed_load_keeps_one_row_per_key(app: AppPlatform) -> None:
    _seed(app)
    _stage_twice(app)
    counts = app.sync()  # finishes the interrupted load (both copies staged), then reads nothing new
    assert counts["contacts"].read == 0
    assert _keys(app, "contacts", "contact_id") == ["c1", "c2"]
    assert _keys(app, "users", "user_id") == ["u1", "u2", "u3"]
    assert app.stored("contacts") == [_contact("c1", "Ann", "Lee", ANN, None, True, T0),
                                      _contact("c2", "Dee", "Fox", None, "+12025550102", False, T0)]
