"""The DuckDB warehouse as a Dagster resource: its file, dlt pipelines into it, and connections.

Only one process may write a DuckDB file at a time, so every asset that writes it runs in the
`warehouse` concurrency pool (limit 1, set in dagster.yaml); checks and sensors open it read-only.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import dlt
import duckdb
from dagster import ConfigurableResource

from pipelines import paths
from pipelines.warehouse import warehouse_pipeline

WAREHOUSE_POOL = "warehouse"


class WarehouseResource(ConfigurableResource):
    """Where the warehouse file and dlt's working folders are."""

    path: str = str(paths.warehouse_path())
    dlt_dir: str = str(paths.dlt_dir())
    work_dir: str = str(paths.work_dir())

    def pipeline(self, name: str, dataset: str) -> dlt.Pipeline:
        """A dlt pipeline loading `dataset` into this warehouse."""
        return warehouse_pipeline(name, dataset, self.path, self.dlt_dir)

    @contextmanager
    def connect(self, read_only: bool = True) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection, read-only unless asked: readers must never hold the writer's lock."""
        con = duckdb.connect(self.path, read_only=read_only)
        try:
            yield con
        finally:
            con.close()
