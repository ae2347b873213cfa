"""The checks every connection-synced stream carries (mail, Meta ads): ids unique per connection, and every
column declared personal holding only ciphertext, in the stream's table and its child table.

Each provider's assets module builds its streams' checks here, so they sit beside their asset in the UI and
are written once for every provider.
"""

from dagster import AssetChecksDefinition, AssetKey

from assets.checks import encrypted_check, unique_keys_check
from pipelines.mail_common.stage import Stream


def stream_checks(stream: Stream) -> list[AssetChecksDefinition]:
    """A stream's checks: ids unique per connection, and no readable personal value in it or its child table."""
    key = AssetKey([stream.dataset, stream.table])
    children = [stream.child.table] if stream.child else []
    return [unique_keys_check(key, stream.dataset, stream.table, stream.primary_key, name=f"{stream.table}_unique_ids"),
            *(encrypted_check(key, stream.dataset, table) for table in [stream.table, *children])]
