"""What a failed sync does to its connection's status, the same for every provider.

A refused token makes the connection `needs_reauth` (with the source's message, which names only the provider
and its code); anything else marks it `erroring` with the root error's class name — never its message, which
may quote data. dlt wraps a source's exception in its own step errors, so the cause chain is searched.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from pipelines.connections.errors import ReauthorizationRequired
from pipelines.connections.registry import Connection, ConnectionRegistry


def root_cause(exc: BaseException) -> BaseException:
    """The innermost exception (dlt wraps a source's error in its own step errors)."""
    while exc.__cause__ is not None or exc.__context__ is not None:
        exc = exc.__cause__ or exc.__context__
    return exc


def reauthorization_required(exc: BaseException) -> ReauthorizationRequired | None:
    """The `ReauthorizationRequired` anywhere in `exc`'s cause chain, if there is one."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ReauthorizationRequired):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


@contextmanager
def recorded_outcome(registry: ConnectionRegistry, connection: Connection) -> Iterator[None]:
    """Run a sync step; on failure record its kind on the connection and re-raise."""
    try:
        yield
    except Exception as exc:
        refused = reauthorization_required(exc)
        if refused is not None:
            registry.mark_needs_reauth(connection.connection_id, str(refused))
        else:
            registry.mark_erroring(connection.connection_id, type(root_cause(exc)).__name__)
        raise
