"""The events source end to end: real generated files, real dlt loads into a real DuckDB file, real keys."""

from __future__ import annotations

import datetime as dt
import gzip
import ipaddress
import json
from pathlib import Path

import fsspec

from pipelines.privacy.keyring import KeyringError
from tests.conftest import Platform, landed_lines

EVENTS = "raw_events.usage_events"
QUARANTINE = "raw_events.usage_events_quarantine"
LEDGER = "raw_events.landing_files"


def test_counts_are_exact(platform: Platform) -> None:
    stats = platform.generate()
    report = platform.ingest()

    assert (report.lines, report.events_loaded, report.duplicates_dropped, report.lines_quarantined) == (
        stats.lines, stats.valid_events, stats.duplicate_lines, stats.bad_lines)
    assert report.lines == report.events_loaded + report.duplicates_dropped + report.lines_quarantined
    assert platform.query(f"SELECT count(*), count(DISTINCT event_id) FROM {EVENTS}") == [
        (stats.valid_events, stats.valid_events)]
    assert platform.query(f"SELECT count(*) FROM {QUARANTINE}") == [(stats.bad_lines,)]
    by_day = dict(platform.query(f"SELECT strftime(received_date, '%Y-%m-%d'), count(*) FROM {EVENTS} GROUP BY 1"))
    assert by_day == {day: n for day, n in stats.valid_by_day.items() if n}
    assert platform.query(
        f"SELECT count(*), sum(lines), sum(events_loaded), sum(duplicates_dropped), sum(lines_quarantined) FROM {LEDGER}"
    ) == [(len(stats.files), stats.lines, stats.valid_events, stats.duplicate_lines, stats.bad_lines)]


def test_second_run_loads_nothing_new(platform: Platform) -> None:
    stats = platform.generate()
    platform.ingest()
    before = platform.query(f"SELECT event_id, _dlt_load_id FROM {EVENTS} ORDER BY event_id")

    again = platform.ingest()

    assert (again.files_found, again.files_skipped, again.files_read, again.lines) == (len(stats.files), len(stats.files), 0, 0)
    assert platform.query(f"SELECT event_id, _dlt_load_id FROM {EVENTS} ORDER BY event_id") == before
    assert platform.query(f"SELECT count(*) FROM {QUARANTINE}") == [(stats.bad_lines,)]


def test_new_file_loads_only_its_new_events(platform: Platform) -> None:
    platform.generate()
    platform.ingest()
    valid = [row for row in landed_lines(platform.landing) if "consent" in row][:5]
    fresh = [dict(valid[0], event_id=f"00000000-0000-4000-8000-00000000000{i}") for i in range(3)]
    late_day = platform.landing / "dt=2026-11-25"
    late_day.mkdir()
    (late_day / "late.ndjson").write_text("".join(json.dumps(r) + "\n" for r in [*valid, *fresh]))

    report = platform.ingest()

    assert (report.files_read, report.lines, report.events_loaded, report.duplicates_dropped) == (1, 8, 3, 5)
    assert platform.query(f"SELECT count(*) FROM {EVENTS} WHERE received_date = DATE '2026-11-25'") == [(3,)]


def _write_lines(path: Path, lines: list[bytes]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\n".join(lines) + b"\n")


def _event(**changes) -> dict:
    base = {
        "event_id": "6f1c2a52-1b2c-4d3e-8f40-0a1b2c3d4e5f", "workspace_id": "ws_0042", "event_type": "page_view",
        "occurred_at": "2026-11-24T10:00:00+01:00", "user_id": "usr_quarantine_test", "anonymous_id": "anon-q-1",
        "device_id": None, "ip": "203.0.113.77", "user_agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0",
        "url": "https://app.gtgcrm.com/contacts?email=someone%40example.com#x", "referrer": None,
        "properties": {"element": "button#save"}, "consent": {"analytics": True, "ads": False},
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v != "<absent>"}


def test_quarantine_records_reason_file_and_line(platform: Platform) -> None:
    def line(**changes) -> bytes:
        return json.dumps(_event(**changes)).encode()

    lines = [
        line(),                                                              # 1 valid
        b'{"event_id": "broken',                                             # 2 broken_json
        b"[1, 2, 3]",                                                        # 3 not_an_object
        line(event_id="<absent>", user_id="u2"),                             # 4 missing_field event_id
        line(event_id="6f1c2a52-1b2c-4d3e-8f40-0a1b2c3d4e01", ip=12345),      # 5 ip wrong type -> no ip alternative
        line(event_id="6f1c2a52-1b2c-4d3e-8f40-0a1b2c3d4e02", ip="999.1.2.3"),  # 6 bad ip
        line(event_id="6f1c2a52-1b2c-4d3e-8f40-0a1b2c3d4e03", occurred_at="2026-02-30T10:00:00Z"),  # 7 bad date
        line(event_id="6f1c2a52-1b2c-4d3e-8f40-0a1b2c3d4e04", occurred_at="2199-01-01T00:00:00Z"),  # 8 future
        line(event_id="6f1c2a52-1b2c-4d3e-8f40-0a1b2c3d4e05", email="a@b.example"),  # 9 unknown field
        b"",                                                                 # 10 empty line
        b'{"event_id": "\xff\xfe"}',                                         # 11 invalid UTF-8
        line(event_id="6f1c2a52-1b2c-4d3e-8f40-0a1b2c3d4e06", user_id=None, anonymous_id=None),  # 12 no subject
        line(event_id="6f1c2a52-1b2c-4d3e-8f40-0a1b2c3d4e07", consent={"analytics": "yes", "ads": False}),  # 13
        line(event_id="6f1c2a52-1b2c-4d3e-8f40-0a1b2c3d4e08") + b"\r",       # 14 valid with CRLF
    ]
    _write_lines(platform.landing / "dt=2026-11-24" / "crafted.ndjson", lines)
    platform.register_workspaces("ws_0042")

    report = platform.ingest()

    assert (report.lines, report.events_loaded, report.lines_quarantined) == (14, 2, 12)
    rows = platform.query(f"SELECT source_line, reason, reason_detail FROM {QUARANTINE} ORDER BY source_line")
    assert [(n, reason) for n, reason, _ in rows] == [
        (2, "broken_json"), (3, "not_an_object"), (4, "missing_field"), (5, "bad_format"), (6, "bad_format"),
        (7, "bad_format"), (8, "implausible_timestamp"), (9, "unknown_field"), (10, "empty_line"),
        (11, "invalid_utf8"), (12, "missing_field"), (13, "wrong_type"),
    ]
    details = {n: detail for n, _, detail in rows}
    assert details[4] == "event_id" and details[13] == "consent.analytics (expected boolean)"
    assert details[7] == "occurred_at (format date-time)" and details[12] == "one of anonymous_id, user_id must be set"
    # The raw line is kept, but only encrypted: decrypting it gives the exact original text back.
    ws, ref, raw = platform.query(f"SELECT workspace_id, subject_ref, raw_line FROM {QUARANTINE} WHERE source_line = 9")[0]
    with platform.keyring() as keyring:
        back = keyring.decrypt(ws, [raw], subject_refs=[ref], context="usage_events_quarantine.raw_line")
    assert (ws, back.to_pylist()) == ("ws_0042", [lines[8].decode()])
    assert platform.query(f"SELECT DISTINCT workspace_id FROM {QUARANTINE} WHERE source_line IN (2, 3, 10, 11)") == [
        ("_unattributed",)]
    # Query strings and fragments are not stored: the e-mail in the URL is gone, the path stays.
    assert platform.query(f"SELECT DISTINCT page_url, page_path FROM {EVENTS}") == [
        ("https://app.gtgcrm.com/contacts", "/contacts")]


def test_personal_values_decrypt_to_the_landed_values(platform: Platform) -> None:
    platform.generate(events=1500)
    platform.ingest()
    landed = {row["event_id"]: row for row in landed_lines(platform.landing) if "consent" in row}
    rows = platform.query(
        f"SELECT event_id, workspace_id, subject_ref, ip, user_id, anonymous_id, device_id, ip_network, "
        f"consent_analytics FROM {EVENTS} ORDER BY event_id"
    )
    columns = {"ip": 3, "user_id": 4, "anonymous_id": 5, "device_id": 6}
    with platform.keyring() as keyring:
        for name, index in columns.items():
            decrypted = keyring.decrypt_many([r[1] for r in rows], [r[2] for r in rows], [r[index] for r in rows],
                                             context=f"usage_events.{name}").to_pylist()
            expected = [landed[r[0]].get(name) if r[8] else None for r in rows]
            assert decrypted == expected, name
    for event_id, *_, network, consent in rows:
        ip = landed[event_id].get("ip")
        if ip is not None:
            prefix = 24 if ipaddress.ip_address(ip).version == 4 else 48
            assert network == str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False))
    assert sum(1 for r in rows if not r[8]) > 0, "the sample should include events without analytics consent"


def _personal_values(landing: Path) -> set[str]:
    values: set[str] = set()
    for row in landed_lines(landing):
        for name in ("user_id", "anonymous_id", "device_id", "ip"):
            value = row.get(name)
            if isinstance(value, str) and len(value) >= 7:
                values.add(value)
    # An IP equal to its own network address also appears inside the (clear) network column, by design.
    return {v for v in values if not v.endswith((".0", "::"))}


def test_no_personal_value_is_readable_anywhere_on_disk(platform: Platform) -> None:
    platform.generate(events=3000, bad_share=0.05)
    platform.ingest()
    values = _personal_values(platform.landing)
    assert len(values) > 300
    landing_bytes = b"".join(p.read_bytes() for p in platform.landing.rglob("*.ndjson"))
    assert all(v.encode() in landing_bytes for v in values), "the search must be able to find what it looks for"

    stored = [p for p in platform.root.rglob("*") if p.is_file() and platform.landing not in p.parents]
    assert platform.warehouse in stored
    found = {(str(p.relative_to(platform.root)), v) for p in stored for v in values if v.encode() in p.read_bytes()}
    assert found == set()
    assert list(platform.work_dir.iterdir()) == []


def test_workspace_keys_do_not_open_other_workspaces(platform: Platform) -> None:
    platform.generate(events=1500)
    platform.ingest()
    (ws_a, ref_a, ip_a), = platform.query(
        f"SELECT workspace_id, subject_ref, ip FROM {EVENTS} WHERE ip IS NOT NULL ORDER BY workspace_id LIMIT 1")
    (ws_b, ip_b), = platform.query(
        f"SELECT workspace_id, ip FROM {EVENTS} WHERE ip IS NOT NULL AND workspace_id <> ? LIMIT 1", [ws_a])
    with platform.keyring() as keyring:
        assert keyring.decrypt(ws_a, [ip_a], subject_refs=[ref_a], context="usage_events.ip").to_pylist()[0]
        # Under workspace B the same ciphertext finds no key for the subject (null) or fails authentication.
        try:
            other = keyring.decrypt(ws_b, [ip_a], subject_refs=[ref_a], context="usage_events.ip").to_pylist()
        except KeyringError:
            other = [None]
        assert other == [None]
        same_value = ["shared-value"]
        assert keyring.blind_index(ws_a, same_value, kind="user.unique_id") != keyring.blind_index(ws_b, same_value, kind="user.unique_id")


def test_gzip_files_and_fsspec_urls_load_the_same(platform: Platform, tmp_path: Path) -> None:
    stats = platform.generate(events=1200)
    fs = fsspec.filesystem("memory")
    for path in platform.landing.rglob("*.ndjson"):
        target = f"memory://landing-test/{path.parent.name}/{path.name}.gz"
        with fs.open(target, "wb") as handle:
            handle.write(gzip.compress(path.read_bytes()))
    other = Platform(tmp_path / "other")
    other.register_workspaces(*stats.workspaces)

    report = other.ingest(landing="memory://landing-test")

    assert (report.files_read, report.events_loaded, report.lines_quarantined) == (
        len(stats.files), stats.valid_events, stats.bad_lines)
    assert other.query(f"SELECT count(*) FROM {EVENTS}") == [(stats.valid_events,)]
    assert other.query(f"SELECT count(*) FROM {LEDGER} WHERE file_url LIKE 'memory:///landing-test/dt=%/%.ndjson.gz'") == [
        (len(stats.files),)]


def test_partition_days_limit_what_is_read(platform: Platform) -> None:
    stats = platform.generate()
    day = platform.ingest(received_dates=[dt.date(2026, 11, 23)])
    assert (day.lines, day.lines_quarantined) == (stats.lines_by_day["2026-11-23"], stats.bad_by_day["2026-11-23"])
    assert platform.query(f"SELECT DISTINCT strftime(received_date, '%Y-%m-%d') FROM {EVENTS}") == [("2026-11-23",)]
    # The other days afterwards: whichever copy of an event loaded first wins, and the totals are exact.
    rest = platform.ingest()
    assert rest.files_read == len(stats.files) - day.files_read
    assert platform.query(f"SELECT count(*) FROM {EVENTS}") == [(stats.valid_events,)]
    assert day.duplicates_dropped + rest.duplicates_dropped == stats.duplicate_lines


def test_user_agents_are_parsed_into_families(platform: Platform) -> None:
    platform.generate(events=2000)
    platform.ingest()
    classes = dict(platform.query(f"SELECT device_class, count(*) FROM {EVENTS} GROUP BY 1"))
    assert set(classes) == {"desktop", "mobile", "tablet", "bot"}
    assert platform.query(f"SELECT count(*) FROM {EVENTS} WHERE is_bot <> (device_class = 'bot')") == [(0,)]
    landed = {row["event_id"]: row for row in landed_lines(platform.landing) if "consent" in row}
    rows = platform.query(f"SELECT event_id, browser_family, os_family FROM {EVENTS} WHERE browser_family = 'Mobile Safari'")
    assert rows and all("iPhone" in landed[e]["user_agent"] or "iPad" in landed[e]["user_agent"] for e, *_ in rows)
    assert {os for _, _, os in rows} == {"iOS"}


def test_bad_input_is_not_silently_lost_when_every_line_is_bad(platform: Platform) -> None:
    _write_lines(platform.landing / "dt=2026-11-24" / "all-bad.ndjson", [b"{", b"nope", b"[]"])
    report = platform.ingest()
    assert (report.lines, report.events_loaded, report.lines_quarantined) == (3, 0, 3)
    assert platform.query(f"SELECT count(*) FROM {QUARANTINE}") == [(3,)]
    assert platform.query(f"SELECT lines, lines_quarantined FROM {LEDGER}") == [(3, 3)]


def test_personal_columns_are_stored_as_binary(platform: Platform) -> None:
    platform.generate(events=800)
    platform.ingest()
    types = dict(platform.query(
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = 'raw_events' AND table_name = 'usage_events'"))
    assert {types[c] for c in ("ip", "user_id", "anonymous_id", "device_id", "user_agent")} == {"BLOB"}


def test_slices_of_one_file_give_the_same_tables(platform: Platform, tmp_path: Path, monkeypatch) -> None:
    """Memory stays bounded by processing a run in slices of files; duplicates across slices still go."""
    stats = platform.generate()
    platform.ingest()
    whole = platform.query(f"SELECT event_id, source_file, source_line FROM {EVENTS} ORDER BY event_id")

    monkeypatch.setattr("pipelines.usage_events.SLICE_BYTES", 1)
    sliced = Platform(tmp_path / "sliced")
    sliced.register_workspaces(*stats.workspaces)
    report = sliced.ingest(landing=platform.landing)

    assert len(stats.files) > 1
    assert (report.events_loaded, report.duplicates_dropped, report.lines_quarantined) == (
        stats.valid_events, stats.duplicate_lines, stats.bad_lines)
    assert sliced.query(f"SELECT event_id, source_file, source_line FROM {EVENTS} ORDER BY event_id") == whole
    assert sliced.query(f"SELECT count(*) FROM {LEDGER}") == [(len(stats.files),)]


def test_events_spread_over_several_dlt_files_load_once(platform: Platform, tmp_path: Path, monkeypatch) -> None:
    """dlt closes its files every `data_writer.file_max_items` rows (memory stays flat on long runs); the files
    of one table load one after another and hold every event exactly once."""
    stats = platform.generate()
    platform.ingest()
    whole = platform.query(f"SELECT event_id, source_file, source_line FROM {EVENTS} ORDER BY event_id")

    monkeypatch.setenv("DATA_WRITER__FILE_MAX_ITEMS", "1000")
    monkeypatch.setattr("pipelines.usage_events.work.YIELD_BATCH_ROWS", 500)
    rotated = Platform(tmp_path / "rotated")
    rotated.register_workspaces(*stats.workspaces)
    report = rotated.ingest(landing=platform.landing)

    jobs = rotated.last_load_jobs()
    event_files = [j for j in jobs["completed_jobs"] if j.job_file_info.table_name == "usage_events"]
    assert len(event_files) == -(-stats.valid_events // 1000)
    assert jobs["failed_jobs"] == []
    assert report.events_loaded == stats.valid_events
    assert rotated.query(f"SELECT event_id, source_file, source_line FROM {EVENTS} ORDER BY event_id") == whole
    assert rotated.query(f"SELECT count(DISTINCT _dlt_load_id) FROM {EVENTS}") == [(1,)]
