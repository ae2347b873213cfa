"""The checks every connection-synced stream carries (mail, Meta ads): ids unique per connection, and every
column declared personal holding only ciphertext, in the stream's table and its child table.

Each provider's assets module builds its streams' checks here, so they sit beside their asset in the UI and
are written once for every provider.
"""

from dagster import AssetCheckExecutionContext, AssetCheckResult, AssetChecksDefinition, AssetKey, asset_check

from assets.checks import encrypted_check
from pipelines.mail_common.stage import CONNECTION, Stream
from pipelines.warehouse import table_exists
from resources.warehouse import WAREHOUSE_POOL, WarehouseResource


def stream_checks(stream: Stream) -> list[AssetChecksDefinition]:
    """A stream's checks: ids unique per connection, and no readable personal value in it or its child table."""
    key = AssetKey([stream.dataset, stream.table])

    @asset_check(asset=key, name=f"{stream.table}_unique_ids", pool=WAREHOUSE_POOL,
                 description=f"No {stream.key} is stored twice for one connection.")
    def unique_ids(context: AssetCheckExecutionContext, warehouse: WarehouseResource) -> AssetCheckResult:
        with warehouse.connect() as con:
            if not table_exists(con, stream.dataset, stream.table):
                return AssetCheckResult(passed=True, metadata={"rows": 0})
            rows, distinct = con.execute(
                f'SELECT count(*), count(DISTINCT ({CONNECTION}, "{stream.key}")) '
                f'FROM "{stream.dataset}"."{stream.table}"').fetchone()
        return AssetCheckResult(passed=rows == distinct, metadata={"rows": rows, "duplicate_rows": rows - distinct})

    children = [stream.child.table] if stream.child else []
    return [unique_ids, *(encrypted_check(key, stream.dataset, table) for table in [stream.table, *children])]

