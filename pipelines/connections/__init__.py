"""Connected provider accounts, for every provider: the registry, what a sync reports, how a failed sync
changes a connection's status, and disconnecting (which files the erasure of the account's data)."""

from pipelines.connections.errors import ReauthorizationRequired
from pipelines.connections.registry import (
    PROVIDERS,
    STATUSES,
    SYNCABLE,
    Connection,
    ConnectionRegistry,
    Tokens,
)
from pipelines.connections.report import StreamCounts, SyncReport

__all__ = ["PROVIDERS", "STATUSES", "SYNCABLE", "Connection", "ConnectionRegistry", "ReauthorizationRequired",
           "StreamCounts", "SyncReport", "Tokens"]
