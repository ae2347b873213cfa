"""The CRM app source's fixtures: an app database (a SQLite file, or a database in a real PostgreSQL server
started for the session in a temporary folder on a free port of 127.0.0.1), and a platform that syncs it."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import duckdb
import pyarrow as pa
import pytest
import sqlalchemy as sa
from dagster import DagsterInstance, Definitions
from dagster_dlt import DagsterDltResource

from assets.crm_app import CRM_APP_ASSETS, CRM_APP_CHECKS, crm_app_job

from pipelines.crm_app import RemovalGuard, sync
from pipelines.crm_app.app_schema import metadata
from pipelines.crm_app.rows import TableCounts
from pipelines.crm_app.settings import DATASET_NAME, TABLES
from pipelines.privacy.categories import declaration
from pipelines.privacy.protect import value_context
from pipelines.privacy.requests import Inbox
from pipelines.sandbox.postgres import local_postgres
from pipelines.workspaces import WorkspaceRegistry
from resources.crm_app import CrmAppResource
from resources.keyring import KeyringResource
from resources.privacy import PrivacyResource
from resources.warehouse import WarehouseResource
from tests.conftest import Platform


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A PostgreSQL server for this session (`pipelines.sandbox.postgres`): its base URL."""
    with local_postgres() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def app_url(request, tmp_path: Path) -> str:
    """An empty app database with the app's tables: a SQLite file, or a new database of the session's server."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'app' / 'app.sqlite'}"
        (tmp_path / "app").mkdir()
    else:
        server = request.getfixturevalue("postgres_server")
        name = f"app_{uuid.uuid4().hex[:12]}"
        admin = sa.create_engine(f"{server}/postgres", isolation_level="AUTOCOMMIT")
        with admin.connect() as con:
            con.execute(sa.text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
        url = f"{server}/{name}"
    engine = sa.create_engine(url)
    metadata.create_all(engine)
    engine.dispose()
    return url


@dataclass
class AppPlatform:
    """A platform (data folder) syncing one app database."""

    platform: Platform
    url: str

    @property
    def root(self) -> Path:
        return self.platform.root

    @property
    def inbox(self) -> Inbox:
        return Inbox(self.root / "privacy" / "requests.sqlite")

    def engine(self) -> sa.Engine:
        return sa.create_engine(self.url)

    def execute(self, statement, rows=None) -> None:
        engine = self.engine()
        with engine.begin() as con:
            con.execute(statement, rows) if rows is not None else con.execute(statement)
        engine.dispose()

    def sync(self, guard: RemovalGuard | None = None) -> dict[str, TableCounts]:
        with self.platform.keyring() as cipher:
            return sync(self.url, cipher, warehouse_path=self.platform.warehouse, dlt_dir=self.platform.dlt_dir,
                        work_dir=self.platform.work_dir, inbox=self.inbox,
                        registry=WorkspaceRegistry(self.platform.workspaces_path), guard=guard)

    def stored(self, table: str) -> list[dict]:
        """The warehouse's rows of an app table (see `decrypted`)."""
        return decrypted(self.platform, DATASET_NAME, table, TABLES[table])


def decrypted(platform: Platform, dataset: str, table: str, declared) -> list[dict]:
    """The warehouse's rows of a table, personal columns decrypted, blind indexes, the subject reference and
    dlt's columns left out, sorted by the columns left."""
    decl = declaration(declared)
    with duckdb.connect(str(platform.warehouse), read_only=True) as con:
        rows = con.sql(f"SELECT * FROM {dataset}.{table}").to_arrow_table()
    with platform.keyring() as cipher:
        columns = {}
        for name in declared:
            if name in decl.blind_indexes or name == decl.subject_ref:
                continue
            column = rows.column(name)
            if name in decl.encrypted:
                column = cipher.decrypt_many(rows.column("workspace_id"), rows.column(decl.subject_ref) if
                                             decl.subject_ref else None, column, value_context(table, name))
            columns[name] = column
    return sorted(pa.table(columns).to_pylist(), key=lambda r: [str(v) for v in r.values()])


@pytest.fixture
def app(platform: Platform, app_url: str) -> AppPlatform:
    return AppPlatform(platform, app_url)


def run_sync_job(platform: Platform, app: CrmAppResource):
    """`crm_app_sync_job` of a platform's data folder, in process (its result, failed or not)."""
    defs = Definitions(assets=CRM_APP_ASSETS, asset_checks=CRM_APP_CHECKS, jobs=[crm_app_job], resources={
        "dlt_runner": DagsterDltResource(),
        "warehouse": WarehouseResource(path=str(platform.warehouse), dlt_dir=str(platform.dlt_dir),
                                       work_dir=str(platform.work_dir)),
        "keyring": KeyringResource(master_key_file=str(platform.master_key_file),
                                   keyring_path=str(platform.keyring_path)),
        "privacy": PrivacyResource(inbox_path=str(platform.root / "privacy" / "requests.sqlite"),
                                   audit_path=str(platform.root / "privacy" / "audit.jsonl"),
                                   exports_dir=str(platform.root / "exports"), landing_urls={}),
        "crm_app": app,
    })
    return defs.resolve_job_def("crm_app_sync_job").execute_in_process(instance=DagsterInstance.ephemeral(),
                                                                        raise_on_error=False)
