"""Asset checks every source's tables share: no key stored twice, and personal columns holding only ciphertext.

Each source attaches them to its own assets (they sit beside their asset in the UI); the scan itself lives in
`pipelines.privacy.scan` and reads the stored declaration, so a new table is covered by declaring its columns.
"""

from typing import Sequence

from dagster import AssetCheckExecutionContext, AssetCheckResult, AssetKey, asset_check

from pipelines.privacy.categories import stored_tables
from pipelines.privacy.scan import unprotected_values
from pipelines.sql import ident
from pipelines.warehouse import table_exists
from resources.warehouse import WAREHOUSE_POOL, WarehouseResource


def unique_keys_check(key: AssetKey, dataset: str, table: str, key_columns: Sequence[str], *, name: str | None = None,
                      description: str | None = None):
    """The check that no `key_columns` value is stored twice in `table` (loaded by the asset `key`), named
    `name` (default `<table>_unique_keys`)."""

    @asset_check(asset=key, name=name or f"{table}_unique_keys", pool=WAREHOUSE_POOL,
                 description=description or f"No ({', '.join(key_columns)}) is stored twice.")
    def unique_keys(context: AssetCheckExecutionContext, warehouse: WarehouseResource) -> AssetCheckResult:
        with warehouse.connect() as con:
            if not table_exists(con, dataset, table):
                return AssetCheckResult(passed=True, metadata={"rows": 0})
            rows, distinct = con.execute(f"SELECT count(*), count(DISTINCT ({', '.join(map(ident, key_columns))})) "
                                         f"FROM {ident(dataset)}.{ident(table)}").fetchone()
        return AssetCheckResult(passed=rows == distinct, metadata={"rows": rows, "duplicate_rows": rows - distinct})

    return unique_keys


def encrypted_check(key: AssetKey, dataset: str, table: str):
    """The check that `table` (loaded by the asset `key`: its own, or its parent stream's) holds no plaintext."""

    @asset_check(asset=key, name=f"{table}_personal_data_encrypted", pool=WAREHOUSE_POOL,
                 description=f"Every column of {table} declared as personal data (x-data-category in the stored "
                 "dlt schema) holds only ciphertext.")
    def encrypted(context: AssetCheckExecutionContext, warehouse: WarehouseResource) -> AssetCheckResult:
        with warehouse.connect() as con:
            tables = stored_tables(con, dataset)
            readable = (unprotected_values(con, dataset, table, tables[table])
                        if table in tables and table_exists(con, dataset, table) else {})
        return AssetCheckResult(passed=not any(readable.values()),
                                metadata={"columns_checked": len(readable), "readable_values": sum(readable.values())})

    return encrypted
