"""The one place that names and runs dlt-backed assets: `<dataset>/<resource>`, grouped by dataset.

Every source's assets go through it, so keys in the UI, in checks and in SQL models line up with the
warehouse's schema and table names, every synced source carries the same kinds and freshness expectation, and
every load reports its table's row count and leaves its columns documented in DuckDB (`load`).
"""

from __future__ import annotations

import datetime as dt
from typing import Iterator

import dlt
from dagster import AssetExecutionContext, AssetKey, AssetSpec, FreshnessPolicy
from dagster_dlt import DagsterDltResource, DagsterDltTranslator
from dagster_dlt.translator import DltResourceTranslatorData

from assets.catalog_specs import document_tables
from resources.warehouse import WarehouseResource

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


def load(context: AssetExecutionContext, dlt_runner: DagsterDltResource, source, pipeline: dlt.Pipeline,
         warehouse: WarehouseResource) -> Iterator:
    """Run a dlt source for a dlt-backed asset: its materialisations carry `dagster/row_count` (and the
    partition's), and once loaded, every declared table's column descriptions are DuckDB comments."""
    yield from dlt_runner.run(context=context, dlt_source=source, dlt_pipeline=pipeline).fetch_row_count()
    with warehouse.connect(read_only=False) as con:
        document_tables(con)
