"""Files that real trackers, collectors and people produce, each beside a good file (issue 12's table).

The rule behind every test: one bad file never blocks the others, no line is lost or loaded twice, and every
skipped or quarantined thing names its file and reason in the run's report (Dagster metadata) and the
quarantine table. Fixtures are generated here; every run is a real dlt load into a real DuckDB file.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import os
import shutil
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

from pipelines.paths import PROJECT_ROOT
from pipelines.usage_events.landing import FileChanged, discover, read_lines
from pipelines.usage_events.settings import MAX_FILE_BYTES, MAX_LINE_BYTES, QUARANTINED_HEAD_BYTES
from pipelines.usage_events.work import EventWork
from tests.conftest import Platform

EVENTS = "raw_events.usage_events"
QUARANTINE = "raw_events.usage_events_quarantine"
LEDGER = "raw_events.landing_files"
DAY = "dt=2026-11-24"
WS = "ws_0007"


def _event(n: int, **changes) -> dict:
    base = {"event_id": f"00000000-0000-4000-8000-{n:012d}", "workspace_id": WS, "event_type": "page_view",
            "occurred_at": "2026-11-24T10:00:00Z", "anonymous_id": f"anon-{n}", "ip": "192.0.2.10",
            "user_agent": "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0",
            "url": "https://app.gtgcrm.com/deals", "consent": {"analytics": True, "ads": False}}
    return {**base, **changes}


def _lines(start: int, count: int, **changes) -> bytes:
    return b"".join(json.dumps(_event(n, **changes)).encode() + b"\n" for n in range(start, start + count))


@pytest.fixture
def day(platform: Platform) -> Path:
    """The landing day, holding one good file of 5 events; the platform knows the events' workspace."""
    folder = platform.landing / DAY
    folder.mkdir(parents=True)
    (folder / "good.ndjson").write_bytes(_lines(1, 5))
    platform.register_workspaces(WS)
    return folder


def _ledger(platform: Platform) -> dict[str, tuple]:
    return {path: tuple(rest) for path, *rest in platform.query(
        f"SELECT file_path, lines, events_loaded, duplicates_dropped, lines_quarantined FROM {LEDGER}")}


def _balanced(report) -> bool:
    return report.lines == report.events_loaded + report.duplicates_dropped + report.lines_quarantined


def test_an_empty_file_alone_is_recorded_with_zero_lines(platform: Platform) -> None:
    (platform.landing / DAY).mkdir(parents=True)
    (platform.landing / DAY / "empty.ndjson").write_bytes(b"")
    report = platform.ingest()
    assert (report.files_read, report.lines) == (1, 0)
    assert _ledger(platform) == {f"{DAY}/empty.ndjson": (0, 0, 0, 0)}


def test_an_empty_file_beside_good_ones_lets_the_day_load(platform: Platform, day: Path) -> None:
    (day / "empty.ndjson").write_bytes(b"")
    (day / "empty.ndjson.gz").write_bytes(gzip.compress(b""))
    report = platform.ingest()
    assert (report.files_read, report.lines, report.events_loaded) == (3, 5, 5)
    assert _ledger(platform) == {f"{DAY}/empty.ndjson": (0, 0, 0, 0), f"{DAY}/empty.ndjson.gz": (0, 0, 0, 0),
                                 f"{DAY}/good.ndjson": (5, 5, 0, 0)}


def test_a_truncated_gzip_loads_what_precedes_the_cut_and_quarantines_the_cut(platform: Platform, day: Path) -> None:
    whole = gzip.compress(_lines(100, 2000))
    cut = whole[: len(whole) * 2 // 3]
    (day / "cut.ndjson.gz").write_bytes(cut)
    readable = zlib.decompressobj(wbits=31).decompress(cut)  # what any reader can get back before the cut
    complete = readable.count(b"\n")
    assert 500 < complete < 2000 and not readable.endswith(b"\n")

    report = platform.ingest()

    assert (report.lines, report.events_loaded, report.lines_quarantined) == (5 + complete + 1, 5 + complete, 1)
    assert report.quarantined_by_file == {f"{DAY}/cut.ndjson.gz": {"truncated_file": 1}}
    (source, line, reason, size), = platform.query(
        f"SELECT source_file, source_line, reason, raw_bytes FROM {QUARANTINE}")
    assert (source.endswith(f"{DAY}/cut.ndjson.gz"), line, reason) == (True, complete + 1, "truncated_file")
    assert size == len(readable) - readable.rfind(b"\n") - 1
    assert _ledger(platform)[f"{DAY}/cut.ndjson.gz"] == (complete + 1, complete, 0, 1)


def test_concatenated_gzip_members_are_all_read(platform: Platform, day: Path) -> None:
    """`cat a.gz b.gz` (or a collector appending members): each member spans several 64 KB read steps."""
    members = [gzip.compress(b"".join(_lines(n, 1, anonymous_id=os.urandom(24).hex()) for n in range(start, start + 3000)))
               for start in (1000, 5000)]  # random ids: each member over 64 KB compressed
    (day / "members.ndjson.gz").write_bytes(b"".join(members))
    assert min(map(len, members)) > 64 * 1024
    report = platform.ingest()
    assert (report.events_loaded, report.lines_quarantined) == (5 + 6000, 0)


def test_a_corrupt_gzip_never_blocks_the_day(platform: Platform, day: Path) -> None:
    (day / "noise.ndjson.gz").write_bytes(b"\x1f\x8b" + bytes(range(256)) * 4)
    report = platform.ingest()
    assert (report.events_loaded, report.lines_quarantined, _balanced(report)) == (5, 1, True)
    assert platform.query(f"SELECT reason, source_line FROM {QUARANTINE}") == [("corrupt_file", 1)]


def test_files_past_the_size_limit_are_read_up_to_it(platform: Platform, day: Path, monkeypatch) -> None:
    """A gzip bomb (a few KB inflating without end) and a plain file over the limit: the lines within the limit
    load, the rest is one quarantined line; memory holds the limit, not the file. The limit is lowered here."""
    limit = 2 * 1024 * 1024
    monkeypatch.setattr("pipelines.usage_events.landing.MAX_FILE_BYTES", limit)
    plain = _lines(1000, 20_000)  # about 6 MB
    (day / "plain.ndjson").write_bytes(plain)
    (day / "bomb.ndjson.gz").write_bytes(gzip.compress(_lines(1000, 1) * 100_000))  # 30 MB of one event

    report = platform.ingest()

    within = plain[:limit].count(b"\n")
    assert report.quarantined_by_file == {f"{DAY}/plain.ndjson": {"file_too_large": 1},
                                          f"{DAY}/bomb.ndjson.gz": {"file_too_large": 1}}
    # The bomb's one event is the plain file's first: the bomb comes first (by path), so that line is a duplicate.
    assert _ledger(platform)[f"{DAY}/plain.ndjson"] == (within + 1, within - 1, 1, 1)
    line = _lines(1000, 1)
    within_bomb = limit // len(line)  # read exactly up to the limit: the line it cuts is the quarantined one
    assert _ledger(platform)[f"{DAY}/bomb.ndjson.gz"] == (within_bomb + 1, 1, within_bomb - 1, 1)


def test_files_of_millions_of_short_lines_are_read_up_to_the_line_cap(platform: Platform, day: Path,
                                                                        monkeypatch) -> None:
    """A few MB of newlines (or of any short line) would be millions of quarantined lines, each costing what an
    event costs: a file is read up to MAX_FILE_LINES lines and the rest is one quarantined line,
    `too_many_lines`, counted before anything is split. The cap is lowered here."""
    monkeypatch.setattr("pipelines.usage_events.landing.MAX_FILE_LINES", 1000)
    (day / "blank.ndjson").write_bytes(b"\n" * 5000 + _lines(100, 1))  # the event after the cap is not read
    (day / "bomb.ndjson.gz").write_bytes(gzip.compress(b"x\r\n" * 300_000))
    (day / "at_cap.ndjson").write_bytes(_lines(200, 1000))  # exactly the cap: read whole

    report = platform.ingest()

    assert report.quarantined_by_file == {f"{DAY}/blank.ndjson": {"empty_line": 1000, "too_many_lines": 1},
                                          f"{DAY}/bomb.ndjson.gz": {"broken_json": 1000, "too_many_lines": 1}}
    assert _ledger(platform) == {f"{DAY}/good.ndjson": (5, 5, 0, 0), f"{DAY}/at_cap.ndjson": (1000, 1000, 0, 0),
                                 f"{DAY}/blank.ndjson": (1001, 0, 0, 1001), f"{DAY}/bomb.ndjson.gz": (1001, 0, 0, 1001)}
    assert platform.query(f"SELECT regexp_extract(source_file, '[^/]+$'), source_line FROM {QUARANTINE} "
                          "WHERE reason = 'too_many_lines' ORDER BY 1") == [("blank.ndjson", 1001), ("bomb.ndjson.gz", 1001)]
    assert _balanced(report) and report.events_loaded == 1005


def test_a_slice_holds_at_most_the_line_budget_and_events_stay_exactly_once(platform: Platform, day: Path,
                                                                            monkeypatch) -> None:
    """Many small files of short lines: a slice stops taking files at SLICE_LINES lines (its memory grows with
    its lines), the files left are read by the next slice, and an event repeated across slices is still one
    event. The budget is lowered here."""
    monkeypatch.setattr("pipelines.usage_events.work.SLICE_LINES", 1000)
    slices = []
    resolve = EventWork.resolve_duplicates
    monkeypatch.setattr(EventWork, "resolve_duplicates",
                        lambda work, *args: (slices.append(work.con.execute("SELECT count(*) FROM parsed").fetchone()[0]),
                                             resolve(work, *args))[1])
    for n in range(5):  # 600 lines each; the third file repeats the first's first 100 events
        first = 1000 if n == 2 else 1000 * (n + 1)
        (day / f"a{n}.ndjson").write_bytes(_lines(first, 100) + _lines(1000 * (n + 1) + 100, 500))

    report = platform.ingest()

    assert slices == [600, 600, 600, 600, 605]  # the last slice takes good.ndjson's 5 lines too
    assert (report.files_read, report.lines, report.events_loaded, report.duplicates_dropped) == (6, 3005, 2905, 100)
    assert platform.query(f"SELECT count(*), count(DISTINCT event_id) FROM {EVENTS}") == [(2905, 2905)]
    assert len(_ledger(platform)) == 6 and _balanced(report)


def test_byte_order_marks_are_ignored_and_utf16_is_decoded(platform: Platform, day: Path) -> None:
    (day / "bom.ndjson").write_bytes(b"\xef\xbb\xbf" + _lines(10, 3))
    (day / "utf16.ndjson").write_bytes(_lines(20, 3).decode().encode("utf-16"))  # with its BOM
    (day / "utf16-broken.ndjson").write_bytes(b"\xff\xfe" + _lines(30, 1).decode().encode("utf-16-le") + b"\x00")

    report = platform.ingest()

    assert (report.lines, report.events_loaded, report.lines_quarantined) == (12, 11, 1)
    assert report.quarantined_by_file == {f"{DAY}/utf16-broken.ndjson": {"undecodable_file": 1}}
    assert _ledger(platform)[f"{DAY}/bom.ndjson"] == (3, 3, 0, 0)
    assert _ledger(platform)[f"{DAY}/utf16.ndjson"] == (3, 3, 0, 0)
    (detail,), = platform.query(f"SELECT reason_detail FROM {QUARANTINE}")
    assert "UTF-16" in detail


_HUGE = 50 * 1024 * 1024
# The child's peak is its own VmHWM: `ru_maxrss` of a process started from the test run also counts the
# parent's resident memory at the fork (Linux carries it across exec), so it reports the suite's size.
_HUGE_RUN = """
import sys
from pathlib import Path
from tests.conftest import Platform
report = Platform(Path(sys.argv[1])).ingest()
peak = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:")) * 1024
print(report.events_loaded, report.lines_quarantined, peak)
"""


def test_a_50_mb_line_is_quarantined_unparsed_within_the_memory_cap(platform: Platform, day: Path) -> None:
    huge = b'{"event_id": "' + b"x" * _HUGE + b'"}'
    (day / "huge.ndjson").write_bytes(_lines(40, 1) + huge + b"\n" + _lines(41, 1))

    done = subprocess.run([sys.executable, "-c", _HUGE_RUN, str(platform.root)], cwd=PROJECT_ROOT,
                          capture_output=True, text=True, timeout=600)

    assert done.returncode == 0, done.stderr[-3000:]
    loaded, quarantined, peak = map(int, done.stdout.split())
    assert (loaded, quarantined) == (7, 1)
    assert peak < 1024 ** 3  # the documented cap of an ingestion (README: peak memory under 1 GB)
    (line, reason, size, ws, ref, raw), = platform.query(
        f"SELECT source_line, reason, raw_bytes, workspace_id, subject_ref, raw_line FROM {QUARANTINE}")
    assert (line, reason, size) == (2, "line_too_long", len(huge))
    with platform.keyring() as keyring:
        kept = keyring.decrypt(ws, [raw], subject_refs=[ref], context="usage_events_quarantine.raw_line").to_pylist()[0]
    assert kept == huge[:QUARANTINED_HEAD_BYTES].decode() and len(huge) > MAX_LINE_BYTES




def test_gzip_bombs_at_the_file_limit_are_read_within_the_memory_cap(platform: Platform, day: Path) -> None:
    """Two files of a few hundred KB inflating past the 256 MB file limit: one of ~900k short lines that each
    break the contract, one of a single line of spaces. Each is read up to the limit, every line within it is
    quarantined and the cut is one more; the ingestion's peak stays under its 1 GB cap (805 MB; 1.73 GB before
    the split, the line hashes and the read groups were bounded)."""
    line = b'{"event_id": "not-a-uuid", "workspace_id": "ws_0007", "pad": "' + b"a" * 235 + b'"}\n'
    (day / "lines.ndjson.gz").write_bytes(gzip.compress(line * (300 * 1024 * 1024 // len(line)), 1))
    (day / "spaces.ndjson.gz").write_bytes(gzip.compress(b" " * (300 * 1024 * 1024), 1))

    done = subprocess.run([sys.executable, "-c", _HUGE_RUN, str(platform.root)], cwd=PROJECT_ROOT,
                          capture_output=True, text=True, timeout=900)

    assert done.returncode == 0, done.stderr[-3000:]
    loaded, quarantined, peak = map(int, done.stdout.splitlines()[-1].split())
    within = MAX_FILE_BYTES // 300  # whole lines of 300 bytes before the limit
    assert (loaded, quarantined) == (5, within + 1 + 1)
    assert peak < 1024 ** 3
    assert platform.query(f"SELECT regexp_extract(source_file, '[^/]+$'), reason, count(*) FROM {QUARANTINE} "
                          "WHERE reason = 'file_too_large' GROUP BY ALL ORDER BY 1") == [
        ("lines.ndjson.gz", "file_too_large", 1), ("spaces.ndjson.gz", "file_too_large", 1)]


def test_files_still_being_written_are_left_for_later(platform: Platform, day: Path) -> None:
    (day / "part.ndjson.tmp").write_bytes(_lines(50, 2))
    (day / "copy.ndjson._COPYING_").write_bytes(_lines(60, 2))
    (day / ".hidden.ndjson").write_bytes(_lines(70, 2))

    first = platform.ingest()

    assert (first.files_read, first.events_loaded) == (1, 5)
    assert first.skipped_files == {f"{DAY}/part.ndjson.tmp": "in_progress", f"{DAY}/copy.ndjson._COPYING_": "in_progress",
                                   f"{DAY}/.hidden.ndjson": "in_progress"}
    (day / "part.ndjson.tmp").rename(day / "part.ndjson")
    (day / "copy.ndjson._COPYING_").rename(day / "copy.ndjson")
    second = platform.ingest()
    assert (second.files_read, second.events_loaded, second.files_skipped) == (2, 4, 1)
    assert second.skipped_files == {f"{DAY}/.hidden.ndjson": "in_progress"}


def test_a_settle_interval_waits_for_files_written_in_place(platform: Platform, day: Path, monkeypatch) -> None:
    monkeypatch.setenv("GTG_LANDING_SETTLE_SECONDS", "3600")
    (day / "slow.ndjson").write_bytes(_lines(80, 2))
    old = (day / "slow.ndjson").stat().st_mtime - 7200
    os.utime(day / "good.ndjson", (old, old))

    first = platform.ingest()

    assert (first.events_loaded, first.skipped_files) == (5, {f"{DAY}/slow.ndjson": "not_settled"})
    os.utime(day / "slow.ndjson", (old, old))
    assert platform.ingest().events_loaded == 2


def test_a_file_changing_while_it_is_read_is_not_taken(platform: Platform, day: Path) -> None:
    (listed,) = discover(str(platform.landing)).files
    with open(day / "good.ndjson", "ab") as handle:
        handle.write(_lines(90, 1))
    with pytest.raises(FileChanged):
        read_lines(listed)


def test_a_file_that_grows_after_its_load_is_read_again_and_reported(platform: Platform, day: Path) -> None:
    from tests.test_ingestion_assets import _run

    assert _run(platform, "2026-11-24").success
    with open(day / "good.ndjson", "ab") as handle:  # the writer was not done: two more events, one bad line
        handle.write(_lines(6, 2) + b"{oops\n")

    result = _run(platform, "2026-11-24")

    meta = result.get_asset_materialization_events()[0].materialization.metadata
    assert meta["files_changed_after_load"].value == [f"{DAY}/good.ndjson"]
    assert {k: meta[k].value for k in ("lines_read", "events_loaded", "duplicates_dropped", "lines_quarantined")} == {
        "lines_read": 8, "events_loaded": 2, "duplicates_dropped": 5, "lines_quarantined": 1}
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert not checks["events_landed_files_unchanged"].passed
    assert checks["events_landed_files_unchanged"].metadata["files_with_lines_added_after_load"].value == {
        f"{DAY}/good.ndjson": 3}
    assert platform.query(f"SELECT count(*), count(DISTINCT event_id) FROM {EVENTS}") == [(7, 7)]


def test_a_file_that_only_lost_lines_passes_the_check(platform: Platform, day: Path) -> None:
    from tests.test_ingestion_assets import _run

    (day / "good.ndjson").write_bytes(_lines(1, 5) + b"{bad\n")
    assert _run(platform, "2026-11-24").success
    (day / "good.ndjson").write_bytes(_lines(1, 2) + b"{bad\n" + _lines(4, 2))  # an erasure scrubbed one line

    result = _run(platform, "2026-11-24")

    meta = result.get_asset_materialization_events()[0].materialization.metadata
    assert (meta["lines_read"].value, meta["duplicates_dropped"].value) == (5, 5)
    assert {e.check_name: e.passed for e in result.get_asset_check_evaluations()}["events_landed_files_unchanged"]
    assert platform.query(f"SELECT count(*) FROM {QUARANTINE}") == [(1,)]


_INGEST = "import sys; from pathlib import Path; from tests.conftest import Platform; " \
          "print(Platform(Path(sys.argv[1])).ingest().skipped_files)"
# Root reads any file: the run drops the capabilities that let it (util-linux's setpriv), so a file's mode
# bits apply to it as to any other user.
_WITHOUT_OVERRIDE = ["setpriv", "--inh-caps=-dac_override,-dac_read_search",
                     "--bounding-set=-dac_override,-dac_read_search", "--"]


def test_an_unreadable_file_is_named_skipped_and_retried(platform: Platform, day: Path) -> None:
    (day / "locked.ndjson").write_bytes(_lines(6, 3))
    (day / "locked.ndjson").chmod(0o000)

    def run() -> str:
        done = subprocess.run([*_WITHOUT_OVERRIDE, sys.executable, "-c", _INGEST, str(platform.root)],
                              cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        return done.stdout.strip()

    assert run() == str({f"{DAY}/locked.ndjson": "unreadable"})
    assert platform.query(f"SELECT file_path, events_loaded FROM {LEDGER}") == [(f"{DAY}/good.ndjson", 5)]
    (day / "locked.ndjson").chmod(0o644)
    assert run() == "{}"
    assert platform.query(f"SELECT count(*) FROM {EVENTS}") == [(8,)]


def test_a_directory_named_like_a_file_is_listed_as_skipped(platform: Platform, day: Path) -> None:
    (day / "folder.ndjson").mkdir()
    (day / "notes.txt.ndjson.bak").write_bytes(b"x")
    report = platform.ingest()
    assert report.events_loaded == 5
    assert report.skipped_files == {f"{DAY}/folder.ndjson": "not_a_file", f"{DAY}/notes.txt.ndjson.bak": "unsupported_name"}


def test_every_entry_the_run_cannot_take_is_named_wherever_it_lies(platform: Platform, day: Path) -> None:
    """Files at the landing root, in folders that are not a valid day, under other names or one folder down
    are never loaded, so each is named with its reason in every run (whichever day it is for), not passed
    over in silence; a symbolic link looping back is listed, not followed."""
    (day / "events.jsonl").write_bytes(_lines(100, 1))
    (day / "hour=10").mkdir()
    (day / "hour=10" / "x.ndjson").write_bytes(_lines(101, 1))
    for folder in ("dt=2026-13-45", "dt=2026-11-24-copy", "events"):
        (platform.landing / folder).mkdir()
        (platform.landing / folder / "y.ndjson").write_bytes(_lines(102, 1))
    (platform.landing / "root.ndjson").write_bytes(_lines(103, 1))
    os.symlink("..", platform.landing / "up")
    os.symlink("..", day / "up")

    report = platform.ingest(received_dates=[dt.date(2026, 11, 24)])
    other_day = platform.ingest(received_dates=[dt.date(2026, 11, 23)])

    outside = {"dt=2026-13-45/y.ndjson", "dt=2026-11-24-copy/y.ndjson", "events/y.ndjson", "root.ndjson", "up"}
    assert report.skipped_files == {f"{DAY}/events.jsonl": "unsupported_name", f"{DAY}/hour=10": "not_a_file",
                                    f"{DAY}/up": "not_a_file", **dict.fromkeys(outside, "outside_day_folder")}
    assert other_day.skipped_files == dict.fromkeys(outside, "outside_day_folder")
    assert (report.files_read, report.events_loaded, other_day.files_read) == (1, 5, 0)


def test_names_that_are_not_utf8_are_named_escaped_and_never_block_the_day(platform: Platform, day: Path) -> None:
    """A file or day folder whose name is not valid UTF-8 (bytes a Linux file name may hold) cannot be a path in
    the ledger, the tables or Dagster's metadata: it is not read, and named with its bytes escaped. It made
    the whole day fail before."""
    with open(os.path.join(os.fsencode(day), b"\xff\xfe.ndjson"), "wb") as handle:
        handle.write(_lines(100, 2))
    folder = os.path.join(os.fsencode(platform.landing), b"dt=2026-11-2\xe9")
    os.mkdir(folder)
    with open(os.path.join(folder, b"x.ndjson"), "wb") as handle:
        handle.write(_lines(200, 2))

    report = platform.ingest()

    assert report.skipped_files == {f"{DAY}/\\xff\\xfe.ndjson": "undecodable_name",
                                    "dt=2026-11-2\\xe9/x.ndjson": "undecodable_name"}
    assert (report.files_read, report.events_loaded, _balanced(report)) == (1, 5, True)
    assert list(_ledger(platform)) == [f"{DAY}/good.ndjson"]


def test_the_same_folder_under_another_path_loads_nothing_twice(platform: Platform, day: Path) -> None:
    (day / "bad.ndjson").write_bytes(b"{broken\n" + _lines(100, 2))
    first = platform.ingest()
    assert (first.events_loaded, first.lines_quarantined) == (7, 1)

    moved = platform.root / "remounted" / "events"
    moved.parent.mkdir()
    shutil.copytree(platform.landing, moved)  # a copy: new modification times, same content
    again = platform.ingest(landing=moved)

    assert (again.files_found, again.files_skipped, again.files_read, again.lines) == (2, 2, 0, 0)
    platform.landing.rename(platform.root / "gone")
    platform.landing.parent.rename(platform.root / "old")
    (platform.root / "remounted").rename(platform.landing.parent)
    assert platform.ingest().lines == 0
    assert platform.query(f"SELECT count(*) FROM {QUARANTINE}") == [(1,)]
    assert platform.query(f"SELECT count(*) FROM {LEDGER}") == [(2,)]


def test_a_file_landed_again_on_another_day_quarantines_nothing_again(platform: Platform, day: Path) -> None:
    content = b"{broken\n" + _lines(100, 2) + b"{broken\n" + b"\n"
    (day / "batch.ndjson").write_bytes(content)
    first = platform.ingest()
    assert (first.events_loaded, first.lines_quarantined) == (7, 3)

    for later in ("dt=2026-11-25", "dt=2026-11-26"):  # landed again twice, the second time in one run with a copy
        (platform.landing / later).mkdir()
        (platform.landing / later / "batch.ndjson").write_bytes(content)
        again = platform.ingest()
        assert (again.lines, again.events_loaded, again.duplicates_dropped, again.lines_quarantined) == (5, 0, 5, 0)
    (platform.landing / "dt=2026-11-26" / "batch-copy.ndjson").write_bytes(content)
    (platform.landing / "dt=2026-11-26" / "batch-copy-2.ndjson").write_bytes(content)
    assert platform.ingest().duplicates_dropped == 10
    assert platform.query(f"SELECT count(*) FROM {QUARANTINE}") == [(3,)]


def test_ipv4_mapped_ipv6_addresses_fall_into_their_ipv4_network(platform: Platform, day: Path) -> None:
    (day / "mapped.ndjson").write_bytes(_lines(200, 1, ip="::ffff:192.0.2.128") + _lines(201, 1, ip="::FFFF:c000:280")
                                         + _lines(202, 1, ip="2001:db8:1234::1"))
    platform.ingest()
    rows = platform.query(f"SELECT event_id, ip_version, ip_network FROM {EVENTS} WHERE event_id > "
                          "'00000000-0000-4000-8000-000000000199' ORDER BY event_id")
    assert [(v, n) for _, v, n in rows] == [(4, "192.0.2.0/24"), (4, "192.0.2.0/24"), (6, "2001:db8:1234::/48")]
