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

from pipelines.crm_app import RemovalGuard, sync
from pipelines.crm_app.app_schema import metadata
from pipelines.crm_app.rows import TableCounts
from pipelines.crm_app.settings import DATASET_NAME, TABLES
from pipelines.privacy.categories import declaration
from pipelines.privacy.protect import value_context
from pipelines.privacy.requests import Inbox
from pipelines.sandbox.postgres import local_postgres
from pipelines.workspaces import WorkspaceRegistry
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
