"""A fuzzer over whole uploaded contact lists, as an outsider would try them: whatever the files hold, the run
loads, and every row read is exactly one of loaded, duplicate or quarantined.

Hypothesis builds a landing zone of a few files, each a table written as CSV (UTF-8 with or without a BOM,
UTF-16 LE / BE with or without a BOM, Windows-1252; comma, semicolon, tab or pipe; quoted fields holding
newlines, delimiters and quotes; ragged rows, blank lines, duplicate / blank / odd headers, formula-injection
values, huge fields, NUL bytes; sometimes cut short) or as an Excel workbook (sometimes cut short). Invariants:
the run never fails on input; a file is loaded or rejected whole (one quarantine row, row 0, with a reason);
rows in = contacts loaded + duplicates dropped + rows quarantined, in the report and the ledger alike;
quarantine reasons are codes and row numbers are in the file; no value reaches a reason, a log record or the
ledger; a second run applies nothing again. The budget is bounded for CI (`GTG_FUZZ_EXAMPLES`, default 10
deterministic examples, each a real dlt load); set it higher to search with random seeds.
"""

from __future__ import annotations

import codecs
import datetime as dt
import csv
import io
import logging
import os
import tempfile
from pathlib import Path

import pytest
import xlsxwriter
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipelines.contact_uploads import load_uploads
from pipelines.contact_uploads.settings import DATASET_NAME, REASONS
from tests.conftest import Platform

_EXAMPLES = os.environ.get("GTG_FUZZ_EXAMPLES")
MARK = "Qz7"  # in every generated value: what must never appear in a log record, reason or ledger row

_headers = st.sampled_from(["Email", "E-mail Address", "Mobile Phone", "Phone", "First Name", "Last Name", "Name",
                            "Company", "Email Opt In", "Notes", "", " ", "Email", "_row", "=cmd|' /C calc'!A0",
                            "E\u0000mail", "Ünïcode", "E-mail 1 - Value", "Phone 1 - Value", "x" * 300])
_cell = st.one_of(
    st.sampled_from([f"ann{MARK}@example.com", f"Bo.{MARK}@Example.ORG", f"{MARK}@", "+1 202 555 0143",
                     "020 7946 0018", "not a phone", "yes", "no", "", " "]),
    st.sampled_from([f"=HYPERLINK(\"http://x\",\"{MARK}\")", f"+SUM(1,{MARK})", f"-2+3{MARK}", f"@SUM({MARK})",
                     f"=cmd|' /C calc'!A0{MARK}", f"\t={MARK}", f"\r={MARK}"]),
    st.sampled_from([f"a,b;c\td|e{MARK}", f"line\nbreak{MARK}", f"cr\r\nlf{MARK}", f"\"quoted\"{MARK}",
                     f"nul\u0000byte{MARK}", f"Zoë Müller {MARK}", f"\ufeff{MARK}", f"{MARK}\u2028sep"]),
    st.integers(10_000, 70_000).map(lambda n: MARK + "h" * n),  # a huge field
    st.text(max_size=12).map(lambda t: t + MARK),
)


@st.composite
def _table(draw) -> list[list[str]]:
    width = draw(st.integers(1, 6))
    rows = [draw(st.lists(_headers, min_size=width, max_size=width))]
    for _ in range(draw(st.integers(0, 12))):
        kind = draw(st.sampled_from(["full", "full", "full", "ragged", "blank"]))
        if kind == "blank":
            rows.append([])
        else:
            n = width if kind == "full" else draw(st.integers(0, width + 3))
            rows.append(draw(st.lists(_cell, min_size=n, max_size=n)))
    return rows


def _csv_bytes(draw, rows: list[list[str]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, delimiter=draw(st.sampled_from(",;\t|")), lineterminator=draw(st.sampled_from(
        ["\n", "\r\n"])), quoting=draw(st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL])))
    for row in rows:
        writer.writerow(row) if row else out.write("\n")
    text = out.getvalue()
    encoding = draw(st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-16-be", "bom-utf-16-be",
                                     "cp1252"]))
    if encoding == "bom-utf-16-be":
        return codecs.BOM_UTF16_BE + text.encode("utf-16-be", "surrogatepass")
    return text.encode(encoding, "replace" if encoding == "cp1252" else "surrogatepass")


def _xlsx_bytes(rows: list[list[str]]) -> bytes:
    out = io.BytesIO()
    book = xlsxwriter.Workbook(out, {"in_memory": True, "strings_to_formulas": False, "strings_to_numbers": False,
                                     "strings_to_urls": False})
    book.set_properties({"created": dt.datetime(2026, 1, 1)})  # the same bytes for the same table
    sheet = book.add_worksheet()
    for r, row in enumerate(rows):
        for c, value in enumerate(row):
            sheet.write_string(r, c, value.replace("\u0000", "")[:32_767])  # Excel's own cell limit
    book.close()
    return out.getvalue()


@st.composite
def _file(draw) -> tuple[str, bytes]:
    rows = draw(_table())
    if draw(st.integers(0, 4)) == 0:
        name, data = "sheet.xlsx", _xlsx_bytes(rows)
    else:
        name, data = "list.csv", _csv_bytes(draw, rows)
    if draw(st.integers(0, 4)) == 0:  # an upload cut short
        data = data[: len(data) * draw(st.integers(0, 999)) // 1000]
    return name, data


@st.composite
def _landing(draw) -> dict[str, bytes]:
    files = {}
    for i in range(draw(st.integers(1, 3))):
        name, data = draw(_file())
        files[f"ws_a/{i}-{name}"] = data
        if draw(st.integers(0, 5)) == 0:  # the same file uploaded again under another name
            files[f"ws_a/{i}-again-{name}"] = data
    return files


def _load(platform: Platform):
    with platform.keyring() as cipher:
        return load_uploads(platform.root / "landing" / "contacts", cipher, warehouse_path=platform.warehouse,
                            dlt_dir=platform.dlt_dir, work_dir=platform.work_dir,
                            known_workspaces=platform.known_workspaces())


def _rows(platform: Platform, table: str, select: str) -> list[tuple]:
    """`select` over one of the uploads' tables; none when no load has created it yet."""
    if not platform.query("SELECT 1 FROM duckdb_tables() WHERE schema_name = ? AND table_name = ?",
                          [DATASET_NAME, table]):
        return []
    return platform.query(f"{select} FROM {DATASET_NAME}.{table}")


@pytest.fixture
def records(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG)
    return caplog


@settings(max_examples=int(_EXAMPLES or 10), deadline=None, database=None, derandomize=_EXAMPLES is None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                 HealthCheck.function_scoped_fixture])
@given(_landing())
def test_any_upload_loads_and_accounts_for_every_row(records: pytest.LogCaptureFixture,
                                                     files: dict[str, bytes]) -> None:
    records.clear()
    with tempfile.TemporaryDirectory() as tmp:
        platform = Platform(Path(tmp) / "data")
        platform.register_workspaces("ws_a")
        landing = platform.root / "landing" / "contacts"
        for name, data in files.items():
            (landing / name).parent.mkdir(parents=True, exist_ok=True)
            (landing / name).write_bytes(data)

        report = _load(platform)

        assert report.files_loaded + report.files_rejected == len(files)
        assert report.rows == report.contacts_loaded + report.duplicates_dropped + report.rows_quarantined
        ledger = platform.query(
            f"SELECT source_file, status, rows, contacts_loaded, duplicates_dropped, rows_quarantined, encoding "
            f"FROM {DATASET_NAME}.contact_upload_files ORDER BY 1")
        assert [r[0] for r in ledger] == sorted(files)
        for _, status, rows, loaded, dropped, quarantined, encoding in ledger:
            if status == "loaded":
                assert rows == loaded + dropped + quarantined
            else:
                assert (status, rows, loaded, dropped, quarantined) == ("rejected", 0, 0, 0, 1)
            assert encoding in (None, "utf-8", "utf-16", "utf-16-le", "utf-16-be", "cp1252")
        quarantine = _rows(platform, "uploaded_contacts_quarantine", "SELECT source_file, source_row, reason")
        assert len(quarantine) == report.rows_quarantined + report.files_rejected
        rows_of = {r[0]: r[2] for r in ledger}
        for source_file, row, reason in quarantine:
            assert reason in REASONS
            assert (row == 0) if reason in ("undecodable_file", "unreadable_file", "no_contact_columns") \
                else 2 <= row <= rows_of[source_file] + 1
        stored = _rows(platform, "uploaded_contacts", "SELECT count(*), count(DISTINCT subject_ref)") or [(0, 0)]
        assert stored == [(report.contacts_loaded, report.contacts_loaded)]
        assert [r.getMessage() for r in records.records if MARK in r.getMessage()] == []
        assert not list(landing.rglob("*.*"))  # every file taken

        for name, data in files.items():  # the same uploads landed again: nothing is applied twice
            (landing / name).write_bytes(data)
        again = _load(platform)
        assert (again.files_loaded, again.files_rejected, again.files_already_loaded) == (0, 0, len(files))
        assert platform.query(f"SELECT count(*) FROM {DATASET_NAME}.contact_upload_files") == [(len(files),)]
