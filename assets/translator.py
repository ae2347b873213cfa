"""The one place that names and runs dlt-backed assets: `<dataset>/<resource>`, grouped by dataset.

Every source's assets go through it, so keys in the UI, in checks and in SQL models line up with the
warehouse's schema and table names, every synced source carries the same kinds and freshness expectation, and
every load reports its table's row count and leaves its columns documented in DuckDB (`load`).
"""

from __future__ import annotations

import datetime as dt
import shutil
import tempfile
from typing import Any, Callable, Iterator, Sequence

import dlt
import duckdb
from dagster import AssetExecutionContext, AssetKey, AssetSpec, FreshnessPolicy, MaterializeResult
from dagster_dlt import DagsterDltResource, DagsterDltTranslator, build_dlt_asset_specs, dlt_assets
from dagster_dlt.translator import DltResourceTranslatorData
from dlt.extract.source import DltSource

from assets.catalog_specs import document_tables
from pipelines.sql import ident
from pipelines.warehouse import table_exists
from resources.warehouse import WAREHOUSE_POOL, WarehouseResource

# Sources load as data arrives (event files) or sync hourly (mailboxes): a day without a load is worth a
# warning, two a failure.
SYNCED_FRESHNESS = FreshnessPolicy.time_window(fail_window=dt.timedelta(hours=48), warn_window=dt.timedelta(hours=26))


class WarehouseTranslator(DagsterDltTranslator):
    """Asset key = [dataset, table]; kinds show dlt and DuckDB in the UI."""

    def get_asset_spec(self, data: DltResourceTranslatorData) -> AssetSpec:
        spec = super().get_asset_spec(data)
        dataset = data.pipeline.dataset_name if data.pipeline else "raw"
        return spec.replace_attributes(
            key=AssetKey([dataset, data.resource.name]),
            group_name=dataset,
            kinds={"dlt", "duckdb", "python"},
            deps=[],
            freshness_policy=SYNCED_FRESHNESS,
        )


def spec_pipeline(name: str, dataset: str) -> dlt.Pipeline:
    """The pipeline a dlt asset definition is described by: only its name, dataset and destination count (the
    asset keys, kinds); a run loads through `WarehouseResource.pipeline`. dlt creates a pipeline's working folder
    when the object is built (and wipes it when it holds no state yet), so it is built in a temporary folder of
    its own, removed at once: built in the warehouse's dlt folder at import, it raced when several processes
    loaded the definitions together."""
    folder = tempfile.mkdtemp(prefix="gtg-dlt-spec-")
    try:
        return dlt.pipeline(pipeline_name=name, destination="duckdb", dataset_name=dataset, pipelines_dir=folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def warehouse_specs(source: DltSource, pipeline_name: str, dataset: str) -> Sequence[AssetSpec]:
    """The asset specs of a dlt source loading `dataset` (one per resource), named by `WarehouseTranslator`."""
    return build_dlt_asset_specs(source, spec_pipeline(pipeline_name, dataset), WarehouseTranslator())


def warehouse_dlt_assets(source: DltSource, pipeline_name: str, dataset: str, **options: Any) -> Callable:
    """`@dlt_assets` for a source loading `dataset` into the warehouse, in the warehouse pool; `options` go to
    `dlt_assets` (the op's name, partitions, backfill policy)."""
    return dlt_assets(dlt_source=source, dlt_pipeline=spec_pipeline(pipeline_name, dataset),
                      dagster_dlt_translator=WarehouseTranslator(), pool=WAREHOUSE_POOL, **options)


def load(context: AssetExecutionContext, dlt_runner: DagsterDltResource, source, pipeline: dlt.Pipeline,
         warehouse: WarehouseResource) -> Iterator[MaterializeResult]:
    """Run a dlt source for a dlt-backed asset: once loaded, every declared table's column descriptions are
    DuckDB comments, and each materialisation carries its row count (`dagster/partition_row_count`, the rows
    this partition's run loaded, on a partitioned asset; else `dagster/row_count`, the table's rows)."""
    results = list(dlt_runner.run(context=context, dlt_source=source, dlt_pipeline=pipeline))
    with warehouse.connect(read_only=False) as con:
        document_tables(con)
        counts = [_row_count(context, con, result) for result in results]
    for result, count in zip(results, counts):
        yield result._replace(metadata={**count, **(result.metadata or {})})


def _row_count(context: AssetExecutionContext, con: duckdb.DuckDBPyConnection, result: MaterializeResult) -> dict:
    """Dagster's table row-count metadata (the keys dagster-dlt's `fetch_row_count` writes; it counts through
    the destination's SQL client and fails on a table the run loaded nothing into)."""
    if context.has_partition_key:
        loaded = (result.metadata or {}).get("rows_loaded")
        return {"dagster/partition_row_count": loaded.value if loaded else 0}
    dataset, table = result.asset_key.path
    rows = (con.execute(f"SELECT count(*) FROM {ident(dataset)}.{ident(table)}").fetchone()[0]
            if table_exists(con, dataset, table) else 0)
    return {"dagster/row_count": rows}
