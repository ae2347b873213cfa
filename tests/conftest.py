"""Shared fixtures: real keyrings, real generated landing files, real DuckDB warehouses in tmp folders."""

from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import dataclass
from pathlib import Path

import dlt
import duckdb
import pytest
from dagster import DagsterInstance

from pipelines.connections.registry import ConnectionRegistry
from pipelines.privacy.keyring import Keyring, load_master_key
from pipelines.sandbox.events import GenerationStats, generate_events
from pipelines.usage_events import IngestReport, ingest
from pipelines.workspaces import WorkspaceRegistry, known_workspaces

# The tests run the sandbox (GTG_ENV has no default; see pipelines.paths.environment), whatever the shell says;
# a test of production sets it itself.
os.environ["GTG_ENV"] = "sandbox"
# The event partitions start at a fixed day, not at whatever a developer's own data folder landed first.
os.environ["GTG_EVENTS_START_DATE"] = "2025-01-01"

END_DATE = dt.date(2026, 11, 24)


@dataclass
class DataFolder:
    """One isolated data folder: keys, connection registry, warehouse, dlt and work folders. Each provider's
    platform fixture adds its sandbox server and sync to it."""

    root: Path

    @property
    def warehouse(self) -> Path:
        return self.root / "warehouse.duckdb"

    @property
    def dlt_dir(self) -> Path:
        return self.root / "dlt"

    @property
    def work_dir(self) -> Path:
        return self.root / "work"

    @property
    def keyring_path(self) -> Path:
        return self.root / "keys" / "keyring.sqlite"

    @property
    def master_key_file(self) -> Path:
        return self.root / "keys" / "master.key"

    @property
    def connections_path(self) -> Path:
        return self.root / "connections" / "connections.sqlite"

    @property
    def registry(self) -> ConnectionRegistry:
        return ConnectionRegistry(self.connections_path)

    def keyring(self) -> Keyring:
        return Keyring.open(self.keyring_path, load_master_key(None, self.master_key_file, True))

    def query(self, sql: str, params: list | None = None) -> list[tuple]:
        with duckdb.connect(str(self.warehouse), read_only=True) as con:
            return con.execute(sql, params or []).fetchall()


class Platform(DataFolder):
    """A data folder that also takes in the usage events: landing files and the workspace registry."""

    @property
    def landing(self) -> Path:
        return self.root / "landing" / "events"

    @property
    def workspaces_path(self) -> Path:
        return self.root / "workspaces" / "workspaces.sqlite"

    def known_workspaces(self) -> frozenset[str]:
        return known_workspaces(self.workspaces_path, self.connections_path)

    def register_workspaces(self, *workspace_ids: str) -> None:
        WorkspaceRegistry(self.workspaces_path).register(workspace_ids, "test")

    def ingest(self, landing: str | Path | None = None, **kwargs) -> IngestReport:
        with self.keyring() as cipher:
            return ingest(str(landing or self.landing), cipher, warehouse_path=self.warehouse,
                          dlt_dir=self.dlt_dir, work_dir=self.work_dir, workspaces=self.known_workspaces(), **kwargs)

    def last_load_jobs(self) -> dict[str, list]:
        """The jobs of the events pipeline's last load package, by state, from the trace dlt keeps on disk."""
        trace = dlt.attach("usage_events", pipelines_dir=str(self.dlt_dir)).last_trace
        return trace.last_load_info.load_packages[0].jobs

    def generate(self, **kwargs) -> GenerationStats:
        args = {"events": 4000, "seed": 11, "days": 3, "end_date": END_DATE, "bad_share": 0.02,
                "duplicate_share": 0.02, "file_events": 1000, "workspaces_path": self.workspaces_path}
        args.update(kwargs)
        return generate_events(str(self.landing), **args)


@pytest.fixture(autouse=True)
def dagster_instance_scope():
    """Each test runs inside its own ephemeral Dagster instance. Resolving a job reads the current instance's
    definitions-state storage, a context variable that an instance sets on enter; without this scope a test
    could find one left behind by an earlier test whose instance was since garbage-collected, and fail
    ("Attempted to resolve undefined DagsterInstance weakref") depending on when the collector ran."""
    with DagsterInstance.ephemeral():
        yield


@pytest.fixture
def platform(tmp_path: Path) -> Platform:
    return Platform(tmp_path / "data")


@pytest.fixture
def generated(platform: Platform) -> Platform:
    """A platform with the sandbox's generated events landed and loaded."""
    platform.generate()
    platform.ingest()
    return platform


def landed_lines(landing: Path) -> list[dict]:
    """Every parseable JSON object line of the landing files (gzip or plain)."""
    import gzip

    rows: list[dict] = []
    for path in sorted(landing.rglob("*.ndjson*")):
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                try:
                    value = json.loads(line)
                except ValueError:
                    continue
                if isinstance(value, dict):
                    rows.append(value)
    return rows


def found_in_files(root: Path, needles: set[str]) -> dict[str, list[str]]:
    """Which needles (as UTF-8 bytes) occur in which files under `root` (paths relative to it)."""
    hits: dict[str, list[str]] = {}
    for path in (p for p in root.rglob("*") if p.is_file()):
        data = path.read_bytes()
        for needle in needles:
            if needle.encode() in data:
                hits.setdefault(needle, []).append(str(path.relative_to(root)))
    return hits
