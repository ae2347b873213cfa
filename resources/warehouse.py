"""The DuckDB warehouse as a Dagster resource: its file, dlt pipelines into it, and connections.

Only one process may write a DuckDB file at a time, and none may read it meanwhile. A run therefore holds the
warehouse lock (`pipelines.warehouse.warehouse_lock`) from the moment its resources start until they stop, so
its assets, its checks and dlt's steps all write and read under one hold, and a run that finds the warehouse
taken says in its log whom it waits for. Every asset and check that opens the warehouse is also in the
`warehouse` concurrency pool (limit 1, by run: dagster_instance.yaml), so the daemon queues such runs instead of starting
them side by side. Sensors read under a shared hold that never waits.

The backend (`pipelines.warehouse.backend`) is the environment's, not the resource's: on the lakehouse the file is
the catalog of the lake's tables, refreshed before a connection opens while this process holds the warehouse,
and a daily-partitioned run's pipelines write into that day's partition folder.
"""

from __future__ import annotations

import datetime as dt
from contextlib import AbstractContextManager, contextmanager
from typing import Iterable, Iterator

import dlt
import duckdb
from dagster import ConfigurableResource, InitResourceContext
from pydantic import PrivateAttr

from pipelines import paths
from pipelines.lakehouse import storage as lakehouse
from pipelines.lakehouse.working_copy import working_copy
from pipelines.warehouse import backend, holds_for_writing, warehouse_lock, warehouse_pipeline

WAREHOUSE_POOL = "warehouse"


class WarehouseResource(ConfigurableResource):
    """Where the warehouse file and dlt's working folders are."""

    path: str = str(paths.warehouse_path())
    dlt_dir: str = str(paths.dlt_dir())
    work_dir: str = str(paths.work_dir())
    _day: dt.date | None = PrivateAttr(default=None)

    @contextmanager
    def yield_for_execution(self, context: InitResourceContext) -> Iterator[WarehouseResource]:
        """Within a run, hold the warehouse for the whole run (outside one, e.g. in a sensor, hold nothing)."""
        run = context.dagster_run
        if run is None:
            yield self
            return
        partition = run.tags.get("dagster/partition")
        purpose = f"Dagster run {run.run_id} ({run.job_name}{f', {partition}' if partition else ''})"
        self._day = _daily(partition)
        with warehouse_lock(self.path, purpose, report=context.log.warning if context.log else print):
            yield self

    def pipeline(self, name: str, dataset: str, memory_limit: str | None = None) -> dlt.Pipeline:
        """A dlt pipeline loading `dataset` into this warehouse (DuckDB capped at `memory_limit` while it loads,
        default the shared `GTG_LOAD_MEMORY_LIMIT`)."""
        return warehouse_pipeline(name, dataset, self.path, self.dlt_dir, self._day, memory_limit)

    def lock(self, purpose: str, shared: bool = False, wait: float | None = None) -> AbstractContextManager[None]:
        """The warehouse lock (a no-op inside a run, which already holds it)."""
        return warehouse_lock(self.path, purpose, shared=shared, wait=wait)

    @contextmanager
    def connect(self, read_only: bool = True, wait: float | None = None,
                changing: Iterable[str] = ()) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection, read-only unless asked, under the warehouse lock (shared for reading); `wait=0` fails at
        once with `WarehouseBusy` instead of waiting for a writer. `changing` names the tables whose rows the
        caller deletes or updates in place (the privacy engine): on the lakehouse they are then a working copy,
        written back to the lake's files when the connection closes (`pipelines.lakehouse.working_copy`)."""
        changing = list(changing)
        if changing and read_only:
            raise ValueError("a read-only connection changes no table")
        with self.lock("reading the warehouse" if read_only else "writing the warehouse", shared=read_only, wait=wait):
            on_lake = backend() == "lakehouse"
            if on_lake and holds_for_writing(self.path):
                lakehouse.refresh_catalog(self.path)
            if on_lake and changing:
                with working_copy(self.path, changing) as con:
                    yield con
                return
            con = duckdb.connect(self.path, read_only=read_only)
            try:
                yield con
            finally:
                con.close()


def _daily(partition: str | None) -> dt.date | None:
    """A run's partition key as a day, when it is one (connection partitions are not)."""
    try:
        return dt.date.fromisoformat(partition) if partition else None
    except ValueError:
        return None
