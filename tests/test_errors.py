"""A row that breaks a step leaves its value nowhere: not in the exception dlt raises, not in the error Dagster
stores, not in any file of dlt's folder or the destination. Real dlt, real DuckDB; the failure is one DuckDB
really raises with the value in its message."""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path

import dlt
import duckdb
import pytest
from dagster._utils.error import serializable_error_info_from_exc_info
from dlt.pipeline.exceptions import PipelineStepFailed

from pipelines.errors import values_withheld
from tests.privacy.test_requests import _files_containing

SECRET = "alice.withheld@example.com"


def _failing_rows(withheld: bool):
    """Two good rows, then a cast of a personal value that DuckDB refuses (and quotes)."""

    @dlt.resource(name="rows")
    def rows():
        with (values_withheld("the test's step") if withheld else nullcontext()), duckdb.connect() as con:
            yield [{"id": 1}, {"id": 2}]
            con.execute("SELECT CAST(? AS INTEGER)", [SECRET]).fetchall()

    return rows()


def _run(tmp_path: Path, withheld: bool) -> tuple[str, str]:
    pipeline = dlt.pipeline(f"withheld_{withheld}", destination=dlt.destinations.duckdb(str(tmp_path / "w.duckdb")),
                            pipelines_dir=str(tmp_path / "dlt"), dataset_name="raw")
    with pytest.raises(PipelineStepFailed) as failed:
        pipeline.run(_failing_rows(withheld))
    stored = serializable_error_info_from_exc_info((failed.type, failed.value, failed.tb)).to_string()
    return str(failed.value), stored


def test_a_row_error_reaches_dlt_and_dagster_without_its_value(tmp_path: Path) -> None:
    message, stored = _run(tmp_path, withheld=True)
    assert "RowProcessingError" in stored and "ConversionException" in message and "the test's step" in message
    assert SECRET not in message and SECRET not in stored
    assert _files_containing(tmp_path, {SECRET}) == {}


def test_without_the_guard_the_same_failure_quotes_the_value(tmp_path: Path) -> None:
    """The control: the failure above does carry the value when nothing withholds it."""
    message, stored = _run(tmp_path, withheld=False)
    assert SECRET in message and SECRET in stored


@pytest.mark.parametrize("error", [duckdb.IOException("Could not set lock on file"), MemoryError("out of memory")])
def test_errors_that_quote_no_row_pass_through_unchanged(error: BaseException) -> None:
    with pytest.raises(type(error)) as raised, values_withheld("a step"):
        raise error
    assert raised.value is error


def test_a_decode_error_keeps_no_input_in_its_chain() -> None:
    with pytest.raises(Exception) as raised, values_withheld("decoding"):
        (SECRET.encode() + b"\xff").decode("utf-8")
    chained = raised.value.__context__
    assert type(raised.value).__name__ == "RowProcessingError" and isinstance(chained, UnicodeDecodeError)
    assert SECRET not in str(raised.value) and SECRET not in str(chained) and SECRET.encode() not in chained.object
