"""Landed files under the privacy engine: the erasure scrub (JSON top-level fields, any encoding, links,
modes, no empty files, scratch in the work folder, killed mid-way) and the lifecycle (replay window, then an
encrypted archive that erasure reaches by destroying keys)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import gzip
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from assets.privacy import POLICY
from pipelines.catalog import LANDING_ZONES
from pipelines.privacy.keyring import KeyringError
from pipelines.privacy.landed import zone_files
from pipelines.privacy.landed_index import INDEX_SUFFIX, index_landing, index_url, read_index
from pipelines.privacy.landed_lifecycle import ARCHIVE_SUFFIX, Overdue, archive_url, overdue, restore, sweep
from pipelines.privacy.policy import PolicyError, load_policy, POLICY_PATH
from pipelines.privacy.requests import Request
from pipelines.privacy.scrub import scrub_landing
from pipelines.workspaces import UNATTRIBUTED_WORKSPACE
from tests.conftest import END_DATE, Platform, landed_lines
from tests.privacy.test_requests import WS_EVENTS, _files_containing, _oracle, _people, _process

ZONE = next(z for z in LANDING_ZONES if z.name == "usage_events")
RULE = next(r for r in POLICY.landed if r.zone == ZONE.name)
DAY = f"dt={END_DATE.isoformat()}"
IDS = ("user_id", "anonymous_id", "device_id")
USER_KIND = ZONE.subject_kinds[IDS.index("user_id")]


def _line(event: int, ws: str = "ws-a", encoding: str = "utf-8", **fields) -> bytes:
    body = {"event_id": f"e-{event}", "workspace_id": ws, "event_type": "page_view",
            "occurred_at": f"{END_DATE.isoformat()}T10:00:00Z", **fields}
    return json.dumps(body, ensure_ascii=False).encode(encoding)


def _write(path: Path, lines: list[bytes], mode: int = 0o644) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = b"\n".join(lines) + b"\n"
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    path.chmod(mode)
    return path


def _lines_of(path: Path) -> list[bytes]:
    data = path.read_bytes()
    return (gzip.decompress(data) if path.suffix == ".gz" else data).splitlines()


def _text_of(path: Path) -> list[bytes]:
    """The lines of a plain file scrubbed in place, each without the whitespace its erased neighbours left; no
    line may be whitespace only (a reader quarantines those)."""
    lines = [line.strip() for line in _lines_of(path)]
    assert all(lines), lines
    return lines


def _scrub(platform: Platform, erased: list[tuple[str, str]], zone=ZONE):
    """Scrub the platform's landing folder for (workspace, user id) pairs, as an erasure by user id does."""
    with platform.keyring() as cipher:
        identities = pa.table({
            "workspace_id": [ws for ws, _ in erased],
            "bidx": cipher.blind_index_many([ws for ws, _ in erased], [v for _, v in erased], kind=USER_KIND),
        })
        return scrub_landing(zone, str(platform.landing), identities, cipher, work_dir=platform.work_dir)


def _bytes_found(root: Path, needles: list[bytes]) -> list[str]:
    """Files under `root` whose bytes (gzip: also decompressed) contain one of `needles`."""
    found = []
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.is_symlink():
            data = path.read_bytes()
            if path.suffix == ".gz":
                data += gzip.decompress(data)
            if any(n in data for n in needles):
                found.append(path.name)
    return found


# -- the scrub ----------------------------------------------------------------------------------------------


def test_scrub_reads_top_level_fields_not_the_first_match(platform: Platform) -> None:
    """A tracker that sorts keys writes properties.user_id before the top-level user_id."""
    sorted_line = json.dumps({"anonymous_id": "anon-1", "event_id": "e-1", "properties": {"user_id": "victim"},
                              "user_id": "owner", "workspace_id": "ws-a"}, sort_keys=True).encode()
    victims_own = _line(2, user_id="victim")
    path = _write(platform.landing / DAY / "a.ndjson", [sorted_line, victims_own, _line(3, user_id="bystander")])

    report = _scrub(platform, [("ws-a", "victim")])
    assert (report.lines_removed, report.files_rewritten) == (1, 1)
    assert _lines_of(path) == [sorted_line, _line(3, user_id="bystander")]  # the owner's line stays

    report = _scrub(platform, [("ws-a", "owner")])
    assert report.lines_removed == 1 and _lines_of(path) == [_line(3, user_id="bystander")]


def test_scrub_places_lines_by_their_top_level_workspace_however_written(platform: Platform) -> None:
    """Lines are skipped unparsed only when plainly of another workspace; every other form is parsed."""
    nested = b'{"user_id":"gone","properties":{"workspace_id":"ws-b"}}'  # no top-level workspace: unattributed
    escaped = b'{"workspace_id":"ws\\u002da","user_id":"gone"}'  # ws-a, written with an escape
    spaced = b'{"workspace_id": "ws-a", "user_id": "gone"}'
    elsewhere = b'{"user_id":"gone","workspace_id":"ws-b"}'  # the same id in a workspace not asked about
    path = _write(platform.landing / DAY / "a.ndjson", [nested, escaped, spaced, elsewhere])

    report = _scrub(platform, [("ws-a", "gone"), ("_unattributed", "gone")])

    assert report.lines_removed == 3 and _lines_of(path) == [elsewhere]


def test_scrub_matches_latin1_lines_plain_and_gzipped(platform: Platform) -> None:
    person = "jörg-7"
    latin1 = _line(1, encoding="latin-1", user_id=person, ip="203.0.113.9", page_title="Café")
    utf8 = _line(2, user_id=person, device_id="dev-jörg")
    others = [_line(3, encoding="latin-1", user_id="anna", page_title="Crème"), _line(4, user_id="bob")]
    plain = _write(platform.landing / DAY / "latin.ndjson", [latin1, others[0]])
    zipped = _write(platform.landing / DAY / "mixed.ndjson.gz", [others[1], latin1, utf8])
    needles = [person.encode("utf-8"), person.encode("latin-1"), b"dev-j\xc3\xb6rg", b"203.0.113.9"]
    assert _bytes_found(platform.root, needles) == ["latin.ndjson", "mixed.ndjson.gz"]

    report = _scrub(platform, [("ws-a", person)])

    assert (report.lines_removed, report.files_rewritten, report.files_removed) == (3, 2, 0)
    assert _bytes_found(platform.root, needles) == []  # landing, work folder, decompressed .gz: nothing
    assert _lines_of(plain) == [others[0]] and _lines_of(zipped) == [others[1]]


def test_scrub_keeps_modes_removes_emptied_files_and_leaves_no_scratch(platform: Platform) -> None:
    mine = [_line(i, user_id="gone") for i in range(3)]
    private = _write(platform.landing / DAY / "private.ndjson", [mine[0], _line(9, user_id="kept")], 0o600)
    shared = _write(platform.landing / DAY / "shared.ndjson.gz", [_line(8, user_id="kept"), mine[1]], 0o640)
    only_mine = _write(platform.landing / DAY / "only.ndjson", [mine[0], mine[2]])
    only_mine_gz = _write(platform.landing / DAY / "only.ndjson.gz", [mine[1]])

    report = _scrub(platform, [("ws-a", "gone")])

    assert (report.files_rewritten, report.files_removed, report.lines_removed) == (2, 2, 5)
    assert not only_mine.exists() and not only_mine_gz.exists()  # no 0-byte file, no empty .gz
    assert private.stat().st_mode & 0o777 == 0o600 and shared.stat().st_mode & 0o777 == 0o640
    assert sorted(p.name for p in platform.landing.rglob("*")) == [DAY, "private.ndjson", "shared.ndjson.gz"]
    assert [p for p in platform.work_dir.rglob("*") if p.is_file()] == []


def test_scrub_never_follows_or_replaces_links_out_of_the_landing_root(platform: Platform, tmp_path: Path) -> None:
    outside = _write(tmp_path / "elsewhere" / "x.ndjson", [_line(1, user_id="gone"), _line(2, user_id="kept")])
    before = outside.read_bytes()
    inside = _write(platform.landing / "real" / "y.ndjson", [_line(3, user_id="gone"), _line(4, user_id="kept")], 0o600)
    (platform.landing / DAY).mkdir(parents=True)
    (platform.landing / DAY / "out.ndjson").symlink_to(outside)
    (platform.landing / DAY / "in.ndjson").symlink_to(inside)
    (platform.landing / DAY / "y.ndjson").symlink_to(inside)  # two links to one file: rewritten once

    report = _scrub(platform, [("ws-a", "gone")])

    assert (report.links_outside_root, report.files_scanned, report.lines_removed) == (1, 1, 1)
    assert outside.read_bytes() == before
    assert os.readlink(platform.landing / DAY / "out.ndjson") == str(outside)
    assert os.readlink(platform.landing / DAY / "in.ndjson") == str(inside)
    assert _lines_of(inside) == [_line(4, user_id="kept")] and inside.stat().st_mode & 0o777 == 0o600


def _index(platform: Platform):
    with platform.keyring() as cipher:
        return index_landing(ZONE, str(platform.landing), cipher, platform.work_dir)


def _current_index(platform: Platform, path: Path) -> dict | None:
    files = zone_files(ZONE, str(platform.landing))
    index = read_index(files, str(platform.landing), str(path))
    return None if index is None else {r["ws"]: (r["line_nos"], r["starts"], sorted(r["bidxs"]))
                                       for r in index.to_pylist()}


def test_the_index_written_at_load_limits_the_scrub_to_the_persons_files_and_stays_current(platform: Platform) -> None:
    mixed = _write(platform.landing / DAY / "mixed.ndjson", [
        _line(1, user_id="kept"), _line(2, user_id="gone", anonymous_id="c-1"), _line(3, ws="ws-b", user_id="gone"),
        _line(4, user_id="kept", device_id="d-1"), _line(5, encoding="latin-1", user_id="gone", page="Café"),
        b"not json \"workspace_id\": \"ws-a\", \"user_id\": \"gone\"", _line(6, user_id="other")])
    zipped = _write(platform.landing / DAY / "zipped.ndjson.gz", [_line(7, user_id="other"), _line(8, user_id="gone")])
    others = _write(platform.landing / DAY / "others.ndjson", [_line(9, user_id="kept"), _line(10, ws="ws-b")])
    with platform.keyring() as cipher:  # the load that comes before the index made the workspaces' keys
        cipher.blind_index_many(["ws-a", "ws-b"], ["x", "x"], kind=USER_KIND)
    assert vars(_index(platform)) == {"files_indexed": 3, "files_current": 0}
    assert vars(_index(platform)) == {"files_indexed": 0, "files_current": 3}

    size = mixed.stat().st_size

    report = _scrub(platform, [("ws-a", "gone")])

    # the file holding nobody erased is not even read; the lines of ws-b are never parsed
    assert (report.files_scanned, report.files_read, report.files_rewritten, report.lines_removed) == (3, 2, 2, 4)
    assert _text_of(mixed) == [_line(1, user_id="kept"), _line(3, ws="ws-b", user_id="gone"),
                               _line(4, user_id="kept", device_id="d-1"), _line(6, user_id="other")]
    assert mixed.stat().st_size == size  # the plain indexed file lost its lines in place
    assert _lines_of(zipped) == [_line(7, user_id="other")]
    # each rewritten file's index was kept current: the lines and offsets of indexing the new file from
    # scratch, the erased identity no longer named (identifiers only the erased lines held may stay: an index
    # may make the scrub read more than it needs, never less)
    kept = {path: _current_index(platform, path) for path in (mixed, zipped, others)}
    assert all(kept.values())
    for path in (mixed, zipped):
        Path(f"{index_url(str(platform.landing))}/{DAY}/{path.name}{INDEX_SUFFIX}").unlink()
    assert vars(_index(platform)) == {"files_indexed": 2, "files_current": 1}
    fresh = {path: _current_index(platform, path) for path in (mixed, zipped, others)}
    for path, rows in fresh.items():
        assert {ws: row[:2] for ws, row in rows.items()} == {ws: row[:2] for ws, row in kept[path].items()}
        assert all(set(row[2]) <= set(kept[path][ws][2]) for ws, row in rows.items())
    with platform.keyring() as cipher:
        gone = cipher.blind_index_many(["ws-a"], ["gone"], kind=USER_KIND).to_pylist()[0]
    assert all(gone not in rows["ws-a"][2] for rows in kept.values() if "ws-a" in rows)
    assert kept[mixed]["ws-a"][0] == [0, 2, 3] and kept[mixed]["ws-b"][0] == [1]

    # a file changed after it was indexed is scanned whole: its index no longer describes it
    with others.open("ab") as handle:
        handle.write(_line(11, user_id="kept") + b"\n")
    report = _scrub(platform, [("ws-a", "kept")])
    assert (report.files_read, report.lines_removed) == (2, 4)
    assert _lines_of(others) == [_line(10, ws="ws-b")] and _current_index(platform, others) is None
    assert _text_of(mixed) == [_line(3, ws="ws-b", user_id="gone"), _line(6, user_id="other")]
    assert mixed.stat().st_size == size


def test_a_plain_indexed_file_loses_lines_in_place_as_json_whitespace(platform: Platform) -> None:
    lines = [_line(0, user_id="gone"), _line(1, user_id="gone"), _line(2, user_id="kept"), _line(3, user_id="gone"),
             _line(4, ws="ws-b", user_id="gone"), _line(5, user_id="gone"), _line(6, user_id="gone"),
             _line(7, user_id="kept", page="x" * 300), _line(8, user_id="gone")]
    path = _write(platform.landing / DAY / "a.ndjson", lines, 0o640)
    data = path.read_bytes()
    inode = path.stat().st_ino
    with platform.keyring() as cipher:
        cipher.blind_index_many(["ws-a", "ws-b"], ["x", "x"], kind=USER_KIND)
    _index(platform)

    report = _scrub(platform, [("ws-a", "gone")])

    assert (report.files_rewritten, report.lines_removed) == (1, 6)
    after = path.read_bytes()
    assert (len(after), path.stat().st_ino, path.stat().st_mode & 0o777) == (len(data), inode, 0o640)
    # leading lines become the first kept line's leading spaces, later ones the line before them's trailing
    # spaces (their newline included); every kept line keeps its bytes at its offset
    assert after.split(b"\n")[0] == b" " * (len(lines[0]) + len(lines[1]) + 2) + lines[2] + b" " * (len(lines[3]) + 1)
    assert after.splitlines() == [after.split(b"\n")[0], lines[4] + b" " * (len(lines[5]) + len(lines[6]) + 2),
                                  lines[7] + b" " * (len(lines[8]) + 1)]
    assert [json.loads(line) for line in after.splitlines()] == [json.loads(lines[i]) for i in (2, 4, 7)]
    for kept in (2, 4, 7):
        assert after[data.index(lines[kept]):].startswith(lines[kept])
    assert b"gone" not in after.replace(lines[4], b"")  # only ws-b's own line still names "gone"
    # the index says what indexing the file afresh says (offsets included), without the erased identity
    kept_index = _current_index(platform, path)
    Path(f"{index_url(str(platform.landing))}/{DAY}/{path.name}{INDEX_SUFFIX}").unlink()
    _index(platform)
    assert {ws: row[:2] for ws, row in _current_index(platform, path).items()} == \
        {ws: row[:2] for ws, row in kept_index.items()} == {"ws-a": ([0, 2], [0, data.index(lines[7])]),
                                                            "ws-b": ([1], [data.index(lines[4])])}

    # a kept line grown past what its reader parses is not made: that file is rewritten instead
    short = dataclasses.replace(ZONE, max_line_bytes=len(lines[7]) + 10)
    report = _scrub(platform, [("ws-a", "kept")], short)
    assert (report.files_rewritten, report.lines_removed) == (1, 2)
    assert path.read_bytes() == lines[4] + b" " * (len(lines[5]) + len(lines[6]) + 2) + b"\n"
    assert path.stat().st_ino != inode and path.stat().st_mode & 0o777 == 0o640
    assert {ws: row[:2] for ws, row in _current_index(platform, path).items()} == {"ws-b": ([0], [0])}


def test_a_day_scrubbed_in_place_replays_without_a_new_quarantined_line(platform: Platform, tmp_path: Path) -> None:
    platform.generate(bad_share=0.0, duplicate_share=0.0)  # a replay quarantines no line of the original
    platform.ingest()
    _index(platform)
    ws, user_id = _people(platform, 1)[0]
    sizes = {p: p.stat().st_size for p in platform.landing.rglob("*.ndjson")}
    loaded = {r[0] for r in platform.query("SELECT event_id FROM raw_events.usage_events")}
    before = {line.get("event_id") for line in landed_lines(platform.landing)}

    _, _, report = _process(platform, Request("erasure", ws, "user_id", user_id))

    removed = before - {line.get("event_id") for line in landed_lines(platform.landing)}
    assert report.landing_lines_removed == len(removed) > 0
    assert {p: p.stat().st_size for p in platform.landing.rglob("*.ndjson")} == sizes  # each one in place
    assert _files_containing(platform.landing, {user_id}) == {}
    replay = Platform(tmp_path / "replay")
    shutil.copytree(platform.root / "keys", replay.root / "keys")
    shutil.copytree(platform.workspaces_path.parent, replay.workspaces_path.parent)
    replayed = replay.ingest(platform.landing)
    assert replayed.lines_quarantined == 0 and replayed.files_read == len(sizes)
    assert {r[0] for r in replay.query("SELECT event_id FROM raw_events.usage_events")} == loaded - removed


# -- replay after an erasure ------------------------------------------------------------------------------


def test_a_day_replays_after_its_files_were_scrubbed(platform: Platform, tmp_path: Path) -> None:
    platform.generate(gzip=True)
    ws, user_id = _people(platform, 1)[0]
    theirs = [line for line in landed_lines(platform.landing) if line.get("workspace_id") == ws
              and line.get("user_id") == user_id][:2]
    for name in ("theirs-only.ndjson", "theirs-only.ndjson.gz"):  # files holding nobody else
        _write(platform.landing / DAY / name, [json.dumps(line).encode() for line in theirs])
    platform.ingest()
    loaded = {r[0] for r in platform.query("SELECT event_id FROM raw_events.usage_events")}
    before = {line.get("event_id") for line in landed_lines(platform.landing)}

    _, _, report = _process(platform, Request("erasure", ws, "user_id", user_id))

    removed = before - {line.get("event_id") for line in landed_lines(platform.landing)}
    assert report.landing_lines_removed > 0 and removed
    assert not (platform.landing / DAY / "theirs-only.ndjson").exists()
    assert not (platform.landing / DAY / "theirs-only.ndjson.gz").exists()
    assert all(_lines_of(p) for p in platform.landing.rglob("*.ndjson*"))  # no empty file left
    replay = Platform(tmp_path / "replay")
    shutil.copytree(platform.root / "keys", replay.root / "keys")
    shutil.copytree(platform.workspaces_path.parent, replay.workspaces_path.parent)
    replayed = replay.ingest(platform.landing)
    assert replayed.files_read == len(list(platform.landing.rglob("*.ndjson*")))
    assert {r[0] for r in replay.query("SELECT event_id FROM raw_events.usage_events")} == loaded - removed


# -- the lifecycle ---------------------------------------------------------------------------------------


def _at(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(2, 30), dt.timezone.utc)


def _sweep(platform: Platform, now: dt.datetime):
    with platform.keyring() as cipher, duckdb.connect(str(platform.warehouse), read_only=True) as con:
        return sweep(ZONE, str(platform.landing), RULE, con, cipher, now, platform.work_dir)


def _overdue(platform: Platform, now: dt.datetime) -> Overdue:
    with duckdb.connect(str(platform.warehouse), read_only=True) as con:
        return overdue(ZONE, str(platform.landing), RULE, con, now)


def _archives(platform: Platform) -> dict[Path, bytes]:
    root = Path(archive_url(str(platform.landing)))
    return {p.relative_to(root): p.read_bytes() for p in sorted(root.rglob(f"*{ARCHIVE_SUFFIX}"))}


def _restored(platform: Platform) -> dict[str, bytes]:
    root = archive_url(str(platform.landing))
    with platform.keyring() as cipher:
        return {str(rel)[:-len(ARCHIVE_SUFFIX)]: restore(ZONE, str(platform.landing), f"{root}/{rel}", cipher)
                for rel in _archives(platform)}


def test_loaded_files_leave_the_clear_after_the_replay_window_and_the_archive_expires(platform: Platform) -> None:
    platform.generate(gzip=True)
    unloaded = _write(platform.landing / "dt=2026-11-20" / "late.ndjson", [_line(1, user_id="late-visitor")])
    platform.ingest(received_dates=[END_DATE - dt.timedelta(days=d) for d in range(3)])
    originals = {str(p.relative_to(platform.landing)): gzip.decompress(p.read_bytes())
                 for p in platform.landing.rglob("*.ndjson.gz")}
    days = sorted({rel.split("/")[0] for rel in originals})
    assert len(days) == 3
    now = _at(END_DATE + dt.timedelta(days=RULE.clear_days))  # the last arrival day is still in its window
    in_window = {rel for rel in originals if rel.startswith(days[-1])}
    assert _overdue(platform, now) == Overdue(len(originals) - len(in_window), 0)
    index = Path(index_url(str(platform.landing)))
    assert _index(platform).files_indexed == len(originals) + 1

    report = _sweep(platform, now)

    # a file leaving the clear takes its index along
    assert {str(p.relative_to(index))[:-len(INDEX_SUFFIX)] for p in index.rglob(f"*{INDEX_SUFFIX}")} == (
        in_window | {"dt=2026-11-20/late.ndjson"})

    assert (report.files_archived, report.files_deleted) == (len(originals) - len(in_window), 0)
    assert report.lines_archived == sum(len(originals[r].splitlines()) for r in originals if r not in in_window)
    assert _overdue(platform, now) == Overdue(0, 0)
    assert {str(p.relative_to(platform.landing)) for p in platform.landing.rglob("*.ndjson*")} == (
        in_window | {"dt=2026-11-20/late.ndjson"})  # the window's files, and the file never loaded
    assert unloaded.exists()
    assert _restored(platform) == {r: originals[r] for r in originals if r not in in_window}  # byte for byte
    archive = Path(archive_url(str(platform.landing)))
    assert all(p.stat().st_mode & 0o777 == 0o600 for p in archive.rglob("*.parquet"))
    assert all(p.stat().st_mode & 0o777 == 0o700 for p in [archive, *archive.rglob("dt=*")])
    ids = {m.decode("utf-8", "replace") for r in originals if r not in in_window
           for m in re.findall(rb'"(?:user_id|anonymous_id|device_id)"\s*:\s*"([^"]{6,})"', originals[r])}
    assert len(ids) > 100 and _files_containing(Path(archive_url(str(platform.landing))), ids) == {}  # the archive holds no plaintext

    # The oldest day's archives expire first: archive_days after their arrival day.
    expiry = _at(dt.date.fromisoformat(days[0][3:]) + dt.timedelta(days=RULE.archive_days + 1))
    oldest = [r for r in _archives(platform) if str(r).startswith(days[0])]
    assert oldest and _overdue(platform, expiry).archives == len(oldest)
    expired = _sweep(platform, expiry)
    assert expired.archives_expired == len(oldest) and _overdue(platform, expiry).archives == 0
    assert not any(str(r).startswith(days[0]) for r in _archives(platform)) and _archives(platform)


def _raw_lines(root: Path) -> list[bytes]:
    return [line for p in sorted(root.rglob("*.ndjson*")) for line in _lines_of(p)]


def test_action_delete_removes_loaded_files_after_the_window_and_keeps_no_archive(platform: Platform) -> None:
    platform.generate(days=2)
    platform.ingest()
    rule = dataclasses.replace(RULE, action="delete", archive_days=None)
    now = _at(END_DATE + dt.timedelta(days=rule.clear_days))
    before = sorted(str(p.relative_to(platform.landing)) for p in platform.landing.rglob("*.ndjson*"))
    with platform.keyring() as cipher, duckdb.connect(str(platform.warehouse), read_only=True) as con:
        report = sweep(ZONE, str(platform.landing), rule, con, cipher, now, platform.work_dir)
        assert overdue(ZONE, str(platform.landing), rule, con, now) == Overdue(0, 0)
    kept = sorted(str(p.relative_to(platform.landing)) for p in platform.landing.rglob("*.ndjson*"))
    assert kept == [r for r in before if r.startswith(DAY)] and report.files_deleted == len(before) - len(kept) > 0
    assert (report.files_archived, report.lines_archived) == (0, 0)
    assert not Path(archive_url(str(platform.landing))).exists()


def test_erasure_reaches_archived_lines_by_destroying_keys_without_touching_the_archive(platform: Platform) -> None:
    platform.generate()
    platform.ingest()
    (ws, user_id), (other_ws, other_id) = _people(platform, 2)
    oracle = _oracle(platform, ws, user_id)
    identifiers = {v for line in landed_lines(platform.landing) if line.get("workspace_id") == ws
                   and line.get("user_id") == user_id for c in IDS for v in [line.get(c)] if isinstance(v, str)}
    others = [line for line in _raw_lines(platform.landing) if f'"user_id":"{other_id}"'.encode() in line
              and f'"workspace_id":"{other_ws}"'.encode() in line and not any(v.encode() in line for v in identifiers)]
    _sweep(platform, _at(END_DATE + dt.timedelta(days=RULE.clear_days)))
    archived = _archives(platform)
    assert archived and others and any(user_id.encode() in data for data in _restored(platform).values())
    assert any(user_id.encode() in p.read_bytes() for p in platform.landing.rglob("*.ndjson*"))  # still in the window

    _, _, report = _process(platform, Request("erasure", ws, "user_id", user_id))

    assert report.landing_lines_removed > 0 and report.keys_destroyed >= 1
    assert _archives(platform) == archived  # not read, not rewritten: its keys are gone
    restored = _restored(platform)
    assert not any(v.encode() in data for data in restored.values() for v in identifiers)
    remaining = [line for data in restored.values() for line in data.splitlines()] + _raw_lines(platform.landing)
    assert [line for line in remaining if line in others] == others  # the other person: every line, in order
    assert _files_containing(platform.root, identifiers & oracle.values) == {}


def _event(event: int, ws: str = "ws-a", **ids) -> bytes:
    """A line that loads as an event (not quarantined): a UUID event id and consent given."""
    return _line(event, ws, event_id=f"00000000-0000-4000-8000-{event:012d}",
                 consent={"analytics": True, "ads": True}, **ids)


def test_an_erasure_destroys_the_keys_of_the_persons_own_identifiers_only(platform: Platform) -> None:
    """The archive keys one share per identifier named on a line (user, cookie and device ids), so erasing a
    person destroys one key per identifier of theirs: their user id (in their workspace and under
    `_unattributed`) and each cookie and device id stitched to them, never a contested cookie (also used by
    another person) or anyone else's. Every line of the others still restores byte for byte."""
    platform.register_workspaces("ws-a", "ws-b")
    theirs = [_event(1, user_id="u-1", anonymous_id="c-1", device_id="d-1"),
              _event(2, user_id="u-1", anonymous_id="c-2"), _event(3, anonymous_id="c-1"),
              _event(4, user_id="u-1", anonymous_id="shared"), _event(5, ws="not a workspace", user_id="u-1")]
    others = [_event(6, user_id="u-2", anonymous_id="shared"), _event(7, user_id="u-2", anonymous_id="c-3"),
              _event(8, anonymous_id="shared"), _event(9, ws="ws-b", user_id="u-1", anonymous_id="c-1")]
    _write(platform.landing / DAY / "a.ndjson", [*theirs, *others])
    platform.ingest()
    assert _sweep(platform, _at(END_DATE + dt.timedelta(days=1))).lines_archived == 9
    assert list(_restored(platform).values()) == [b"\n".join([*theirs, *others]) + b"\n"]

    _, _, report = _process(platform, Request("erasure", "ws-a", "user_id", "u-1"))

    # u-1 in ws-a and under `_unattributed`, c-1, c-2, d-1; not `shared`, u-2, c-3, nor ws-b's u-1 and c-1.
    assert report.keys_destroyed == 5
    assert report.rows_by_table == {"raw_events.usage_events": 4, "raw_events.usage_events_quarantine": 1}
    assert list(_restored(platform).values()) == [b"\n".join(others) + b"\n"]
    kind = dict(zip(IDS, ZONE.subject_kinds))
    with platform.keyring() as cipher:
        def key_of(ws: str, field: str, value: str) -> list[str]:
            """A probe value sealed and opened under the identifier's subject key (KeyringError: it is gone)."""
            ref = cipher.blind_index(ws, [value], kind=kind[field])
            sealed = cipher.encrypt_with_refs([ws], ref, ["probe"], "probe")
            return cipher.decrypt_many([ws], ref, sealed, "probe").to_pylist()

        for ws, field, value in [("ws-a", "user_id", "u-1"), (UNATTRIBUTED_WORKSPACE, "user_id", "u-1"),
                                 ("ws-a", "anonymous_id", "c-1"), ("ws-a", "anonymous_id", "c-2"),
                                 ("ws-a", "device_id", "d-1")]:
            with pytest.raises(KeyringError):
                key_of(ws, field, value)
        for ws, field, value in [("ws-a", "user_id", "u-2"), ("ws-a", "anonymous_id", "shared"),
                                 ("ws-a", "anonymous_id", "c-3"), ("ws-b", "user_id", "u-1"),
                                 ("ws-b", "anonymous_id", "c-1")]:
            assert key_of(ws, field, value) == ["probe"]


def test_a_sweep_racing_an_erasure_cannot_keep_the_person_readable(platform: Platform) -> None:
    """The erasure destroys keys, then scrubs. A sweep that read a file before the keys went archives it under
    keys it creates afresh; the scrub, which waits for the sweep's zone lock, destroys those too."""
    old = _write(platform.landing / "dt=2026-11-20" / "a.ndjson", [_line(1, user_id="gone"), _line(2, user_id="kept")])
    platform.ingest()
    with platform.keyring() as cipher:  # the erasure's first step
        cipher.destroy_subjects("ws-a", cipher.blind_index("ws-a", ["gone"], kind=USER_KIND))
    _sweep(platform, _at(END_DATE))  # the racing sweep archives after that step
    assert not old.exists() and [b"gone" in data for data in _restored(platform).values()] == [True]

    _scrub(platform, [("ws-a", "gone")])

    assert list(_restored(platform).values()) == [_line(2, user_id="kept") + b"\n"]


def test_archive_shares_are_keyed_per_identifier_kind_as_erasure_destroys_them(platform: Platform) -> None:
    """The same string as a cookie id and as a user id is two identifiers: erasing the cookie id (a real
    erasure request) makes the archived line naming that cookie unreadable and leaves the user id's line."""
    as_cookie, as_user, other = (_line(1, user_id="u-1", anonymous_id="same"), _line(2, user_id="same"),
                                 _line(3, anonymous_id="anon-2"))
    _write(platform.landing / "dt=2026-11-20" / "a.ndjson", [as_cookie, as_user, other])
    platform.ingest()
    _sweep(platform, _at(END_DATE))
    assert list(_restored(platform).values()) == [b"\n".join([as_cookie, as_user, other]) + b"\n"]

    _, _, report = _process(platform, Request("erasure", "ws-a", "anonymous_id", "same"))

    assert report.keys_destroyed >= 1
    assert list(_restored(platform).values()) == [as_user + b"\n" + other + b"\n"]


def test_a_sweep_never_archives_a_suppressed_person_under_fresh_keys(platform: Platform) -> None:
    """A file landed again after an erasure still names the erased person: the sweep leaves their lines out of
    the archive (their keys are gone; sealing under new ones would make them readable again)."""
    platform.register_workspaces("ws-a")
    _write(platform.landing / "dt=2026-11-20" / "a.ndjson", [_line(1, user_id="gone"), _line(2, user_id="kept")])
    platform.ingest()
    _process(platform, Request("erasure", "ws-a", "user_id", "gone"))
    again = [_line(3, user_id="gone"), _line(4, user_id="other")]
    _write(platform.landing / "dt=2026-11-20" / "b.ndjson", again)
    platform.ingest()

    report = _sweep(platform, _at(END_DATE))

    assert (report.files_archived, report.lines_archived, report.lines_suppressed) == (2, 2, 1)
    assert _restored(platform) == {"dt=2026-11-20/a.ndjson": _line(2, user_id="kept") + b"\n",
                                   "dt=2026-11-20/b.ndjson": _line(4, user_id="other") + b"\n"}
    assert _bytes_found(Path(archive_url(str(platform.landing))), [b"gone"]) == []


def test_a_sweep_racing_an_offboarding_cannot_keep_the_workspace_readable(platform: Platform) -> None:
    """Offboarding destroys the workspace key, then scrubs every line of the workspace without hashing it. A
    sweep that archived in between created the workspace's keys afresh; the scrub destroys them again."""
    _write(platform.landing / "dt=2026-11-20" / "a.ndjson", [_line(1, user_id="u-1"), _line(2),
                                                             _line(3, ws="ws-b", user_id="u-2")])
    platform.ingest()
    with platform.keyring() as cipher:  # offboarding's first step
        cipher.destroy_workspace("ws-a")
    _sweep(platform, _at(END_DATE))  # the racing sweep archives after that step
    assert [data.count(b'"ws-a"') for data in _restored(platform).values()] == [2]

    with platform.keyring() as cipher:
        no_one = pa.table({"workspace_id": pa.array([], pa.string()), "bidx": pa.array([], pa.binary())})
        report = scrub_landing(ZONE, str(platform.landing), no_one, cipher, frozenset({"ws-a"}), platform.work_dir)

    assert report.files_scanned == 0  # the file was archived: nothing in the clear to rewrite
    assert list(_restored(platform).values()) == [_line(3, ws="ws-b", user_id="u-2") + b"\n"]


def test_offboarding_drops_every_line_of_the_workspace_from_landed_files(platform: Platform) -> None:
    kept = _line(3, ws="ws-b", user_id="u-2")
    path = _write(platform.landing / DAY / "a.ndjson", [_line(1, user_id="u-1"), _line(2), kept], mode=0o640)
    with platform.keyring() as cipher:
        no_one = pa.table({"workspace_id": pa.array([], pa.string()), "bidx": pa.array([], pa.binary())})
        report = scrub_landing(ZONE, str(platform.landing), no_one, cipher, frozenset({"ws-a"}), platform.work_dir)
        assert not cipher.has_workspace("ws-a")  # never hashed: the workspace key is not created again

    assert (report.files_rewritten, report.lines_removed) == (1, 2)
    assert _lines_of(path) == [kept] and path.stat().st_mode & 0o777 == 0o640


# -- crash safety -----------------------------------------------------------------------------------------

_ERASE = """
import os, signal, sys, duckdb
from pathlib import Path
from pipelines.privacy.audit import AuditLog
from pipelines.privacy.dsr import process_pending
from pipelines.privacy.requests import Inbox
from tests.conftest import Platform
doomed = os.environ.get("GTG_TEST_KILL_BEFORE_REPLACING")
if doomed:  # the kill point: kill -9 of this process just before the rewritten copy would replace that file
    replace = os.replace
    def _replace(source, target, *args, **kwargs):
        if os.path.realpath(target) == os.path.realpath(doomed):
            os.kill(os.getpid(), signal.SIGKILL)
        return replace(source, target, *args, **kwargs)
    os.replace = _replace
platform = Platform(Path(sys.argv[1]))
with platform.keyring() as cipher, duckdb.connect(str(platform.warehouse)) as con:
    process_pending(con, cipher, Inbox(platform.root / "privacy" / "requests.sqlite"),
                    AuditLog.of(platform.root / "privacy" / "audit.jsonl", cipher), exports_dir=platform.root / "exports",
                    landing_urls={"usage_events": str(platform.landing)})
"""


def test_an_erasure_killed_during_the_scrub_leaves_no_plaintext_once_rerun(platform: Platform) -> None:
    platform.generate()
    platform.ingest()
    ws, user_id = _people(platform, 1)[0]
    crowd = [f'{{"event_id":"c-{i}","workspace_id":"{ws}","user_id":"crowd-{i}"}}'.encode() for i in range(1000)]
    big = _write(platform.landing / DAY / "big.ndjson.gz", [*crowd, _line(99, ws=ws, user_id=user_id)])
    from pipelines.privacy.requests import Inbox
    Inbox(platform.root / "privacy" / "requests.sqlite").submit(Request("erasure", ws, "user_id", user_id))
    env = {**os.environ, "GTG_DATA_DIR": str(platform.root)}
    scratch = platform.root / "work" / f"landed-{ZONE.name}"
    count = f"SELECT count(*) FROM {WS_EVENTS}"
    events = platform.query(count)[0][0]
    mine = len(_oracle(platform, ws, user_id, erasure=True).event_ids)
    assert mine > 0
    # Killed (kill -9) when the scrub has written the rewritten copy of `big` and is about to rename it over
    # the original: the last moment before the landed file changes, while the rows' deletion runs beside it
    # uncommitted.
    killed = subprocess.run([sys.executable, "-c", _ERASE, str(platform.root)],
                            env={**env, "GTG_TEST_KILL_BEFORE_REPLACING": str(big)}, capture_output=True)
    assert killed.returncode == -signal.SIGKILL, killed.stderr.decode()[-2000:]

    left = list(scratch.glob("*.tmp"))
    assert len(left) == 1 and len(gzip.decompress(left[0].read_bytes()).splitlines()) == len(crowd)  # the copy ...
    assert not [p for p in platform.landing.rglob("*") if p.is_file() and ".ndjson" not in p.name]  # ... not here
    assert len(_lines_of(big)) == len(crowd) + 1  # the file being rewritten is whole
    inbox = Inbox(platform.root / "privacy" / "requests.sqlite")
    assert [r["status"] for r in inbox.all()] == ["received"]
    assert platform.query(count)[0][0] == events  # the deletion commits only after the keys and the scrub

    subprocess.run([sys.executable, "-c", _ERASE, str(platform.root)], env=env, check=True)

    assert list(scratch.iterdir()) == []  # removed at the next start
    assert _lines_of(big) == crowd
    assert platform.query(count)[0][0] == events - mine
    assert _files_containing(platform.root, {user_id}) == {}
    assert [r["status"] for r in inbox.all()] == ["completed"]


# -- the policy file --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("change", "message"), [
    (("zone = \"usage_events\"", "zone = \"nowhere\""), "unknown landing zone 'nowhere'"),
    (("clear_days = 0", "clear_days = -1"), "clear_days must be a whole number of days >= 0"),
    (("action = \"archive\"\narchive_days = 395", "action = \"archive\""), "is missing ['archive_days']"),
    (("action = \"archive\"\narchive_days = 395", "action = \"delete\"\narchive_days = 395"),
     "archive_days applies to action 'archive' only"),
    (("[[landed]]", "[[unused]]"), "unknown section(s) ['unused']"),
])
def test_a_wrong_landed_rule_stops_the_policy_with_a_clear_error(tmp_path: Path, change, message) -> None:
    from assets.privacy import DERIVED_TABLES
    from pipelines.catalog import DECLARED_TABLES

    text = POLICY_PATH.read_text()
    assert change[0] in text
    bad = tmp_path / "policy.toml"
    bad.write_text(text.replace(change[0], change[1]))
    with pytest.raises(PolicyError, match=None) as caught:
        load_policy({**DECLARED_TABLES, **DERIVED_TABLES}, bad)
    assert message in str(caught.value)


def test_a_landing_zone_without_a_landed_rule_stops_the_policy(tmp_path: Path) -> None:
    from assets.privacy import DERIVED_TABLES
    from pipelines.catalog import DECLARED_TABLES

    text = POLICY_PATH.read_text()
    start = text.index("[[landed]]\nzone")
    bad = tmp_path / "policy.toml"
    bad.write_text(text[:start] + text[text.index("archive_days = 395", start) + len("archive_days = 395"):])
    with pytest.raises(PolicyError) as caught:
        load_policy({**DECLARED_TABLES, **DERIVED_TABLES}, bad)
    assert "landing zone(s) ['usage_events'] hold personal data but have no [[landed]] rule" in str(caught.value)
