"""Erasure on the lakehouse: keys destroyed, only the files holding the person's rows rewritten, and no byte of
them left anywhere in the lake folder."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.catalog import DECLARED_TABLES
from pipelines.lakehouse import storage
from pipelines.lakehouse.erasure import erase_subjects
from pipelines.privacy.protect import value_context
from pipelines.warehouse import warehouse_lock
from tests.conftest import Platform
from tests.test_ingestion_assets import DAYS, _run

EVENTS = "raw_events.usage_events"


def _lake_bytes(lake: Path) -> dict[str, bytes]:
    return {str(p.relative_to(lake)): p.read_bytes() for p in sorted(lake.rglob("*")) if p.is_file()}


def _searchable(name: str, data: bytes) -> bytes:
    """A file's bytes, and for Parquet also every cell decoded (its pages are compressed and dictionary-encoded,
    so a value need not appear in the raw bytes)."""
    if not name.endswith(".parquet"):
        return data
    cells = [v if isinstance(v, bytes) else str(v).encode() for column in pq.read_table(pa.BufferReader(data)).columns
             for v in column.to_pylist() if v is not None]
    return data + b"\0".join(cells)


def test_erasure_rewrites_only_the_persons_files_and_leaves_no_byte_of_them(
        platform: Platform, lakehouse: None) -> None:
    platform.generate()
    assert all(_run(platform, day).success for day in DAYS)  # one day partition each
    lake = platform.root / "lakehouse"
    scan = storage.scan_sql(lake / "raw_events" / "usage_events", with_filename=True)
    with duckdb.connect(str(platform.warehouse), read_only=True) as con:
        # A signed-in person seen on some days only: the other days' files must stay as they are.
        ((ws, subject, rows),) = con.execute(
            f"SELECT workspace_id, subject_ref, count(*) FROM {scan} WHERE user_id IS NOT NULL "
            "GROUP BY ALL HAVING count(DISTINCT filename) < 3 ORDER BY 3 DESC, 2 LIMIT 1").fetchall()
        # What must disappear: the subject reference and every ciphertext and blind index of their rows.
        theirs = {bytes(v) for row in con.execute(
            f"SELECT subject_ref, user_id, anonymous_id, device_id, ip, user_id_bidx, ip_bidx FROM {EVENTS} "
            "WHERE workspace_id = ? AND subject_ref = ?", [ws, subject]).fetchall() for v in row if v is not None}
        total = con.execute(f"SELECT count(*) FROM {EVENTS}").fetchone()[0]
        holding = {str(Path(f).relative_to(lake)) for (f,) in con.execute(
            f"SELECT DISTINCT filename FROM {scan} "
            "WHERE workspace_id = ? AND subject_ref = ?", [ws, subject]).fetchall()}
        (user_id,) = con.execute(f"SELECT user_id FROM {EVENTS} WHERE workspace_id = ? AND subject_ref = ? "
                                 "AND user_id IS NOT NULL LIMIT 1", [ws, subject]).fetchone()
    with platform.keyring() as cipher:
        readable = cipher.decrypt(ws, [bytes(user_id)], subject_refs=[bytes(subject)],
                                  context=value_context(EVENTS, "user_id")).to_pylist()
    before = _lake_bytes(lake)
    assert rows > 1 and holding and len(holding) < len(storage.files(lake / "raw_events" / "usage_events"))
    searched = [_searchable(name, data) for name, data in before.items()]
    assert {v for v in theirs if any(v in data for data in searched)} == theirs  # the search finds them before

    with platform.keyring() as cipher, warehouse_lock(platform.warehouse, "erasure test"):
        report = erase_subjects(platform.warehouse, cipher, [(ws, bytes(subject))], DECLARED_TABLES)

    assert report.keys_destroyed == 1 and report.rows_removed == rows
    assert set(report.files_rewritten) | set(report.files_deleted) == holding
    after = _lake_bytes(lake)
    assert {name: data for name, data in after.items() if name not in holding} == {
        name: data for name, data in before.items() if name not in holding}  # every other file byte for byte
    assert not {name for name, data in after.items() if any(v in _searchable(name, data) for v in theirs)}
    with duckdb.connect(str(platform.warehouse), read_only=True) as con:
        assert con.execute(f"SELECT count(*) FROM {EVENTS}").fetchone()[0] == total - rows
        assert con.execute(f"SELECT count(*) FROM {EVENTS} WHERE workspace_id = ? AND subject_ref = ?",
                           [ws, subject]).fetchone()[0] == 0
    with platform.keyring() as cipher:  # a copy kept anywhere (a backup) reads as nothing without the key
        assert readable != [None] and cipher.decrypt(ws, [bytes(user_id)], subject_refs=[bytes(subject)],
                                                     context=value_context(EVENTS, "user_id")).to_pylist() == [None]
