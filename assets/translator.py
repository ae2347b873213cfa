"""The one place that names dlt-backed assets: `<dataset>/<resource>`, grouped by dataset.

Every source's assets go through it, so keys in the UI, in checks and in SQL models line up with the
warehouse's schema and table names.
"""

from __future__ import annotations

from dagster import AssetKey, AssetSpec
from dagster_dlt import DagsterDltTranslator
from dagster_dlt.translator import DltResourceTranslatorData


class WarehouseTranslator(DagsterDltTranslator):
    """Asset key = [dataset, table]; kinds show dlt and DuckDB in the UI."""

    def get_asset_spec(self, data: DltResourceTranslatorData) -> AssetSpec:
        spec = super().get_asset_spec(data)
        dataset = data.pipeline.dataset_name if data.pipeline else "raw"
        return spec.replace_attributes(
            key=AssetKey([dataset, data.resource.name]),
            group_name=dataset,
            kinds={"dlt", "duckdb"},
            deps=[],
        )
