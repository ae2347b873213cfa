"""Errors raised while rows are processed carry no row's value.

DuckDB and Arrow quote the value that failed a cast, a decode or a constraint in their messages (DuckDB's
`Could not convert string 'alice@example.com' to INT32`), and an exception's message ends up in Dagster's
run storage, dlt's trace file and the logs. Code that processes rows runs inside `values_withheld`: those
errors become a `RowProcessingError` that names the step and the error's class only, raised `from None` (Dagster
then shows no chained error), and the original's message is emptied first, because dlt's trace walks the
chain regardless and Python links the original as the new error's context. Errors that quote no row (out of memory,
I/O and lock errors, the keyring's) pass through unchanged, with their diagnostics.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import duckdb
import pyarrow as pa

# The error classes whose messages can quote a row's value: DuckDB's data errors (conversion, out of range,
# type mismatch), invalid input (a failed decode), constraint violations (the duplicate key), Arrow's
# invalid-data and type errors, and Python's decode errors (they carry the undecodable bytes).
VALUE_QUOTING_ERRORS: tuple[type[BaseException], ...] = (
    duckdb.DataError,
    duckdb.InvalidInputException,
    duckdb.IntegrityError,
    pa.ArrowInvalid,
    pa.ArrowTypeError,
    UnicodeError,
)


class RowProcessingError(RuntimeError):
    """A step failed on some row; the underlying message is withheld because it may quote that row."""


@contextmanager
def values_withheld(step: str) -> Iterator[None]:
    """Run a step that processes rows; an error that may quote a row is replaced by one that does not."""
    try:
        yield
    except VALUE_QUOTING_ERRORS as exc:
        _scrub(exc)
        raise RowProcessingError(
            f"{step} failed with {type(exc).__module__}.{type(exc).__name__}; its message is withheld because it "
            "can quote a row's personal data (reproduce it on a copy of the input to see the value)"
        ) from None


def _scrub(exc: BaseException) -> None:
    """Empty what an error's text is made of: its arguments, and a decode error's input."""
    if isinstance(exc, (UnicodeDecodeError, UnicodeEncodeError, UnicodeTranslateError)):
        exc.object = type(exc.object)()
        exc.start = exc.end = 0
    exc.args = ("(message withheld)",)
