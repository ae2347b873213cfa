"""Tests of the sandbox usage-event generator against real files.

Why these tests: the generator's stats are the ground truth that pipeline tests and benchmarks assert against,
so every count is recomputed here independently from the files themselves, with the reference JSON Schema
validator (jsonschema + rfc3339-validator, so `format: date-time` and the ip formats are really checked).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import gzip
import json
import math
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fsspec
import pytest
from jsonschema import Draft202012Validator

from pipelines.sandbox.events import BAD_KINDS, GenerationStats, generate_events, main
from pipelines.workspaces import known_workspaces

CONTRACT = Path(__file__).resolve().parents[2] / "pipelines" / "usage_events" / "contract" / "usage_event-1-0-0.json"
END = dt.date(2026, 11, 24)
Y2K = dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc)
FILE_RE = re.compile(r"/dt=(\d{4}-\d{2}-\d{2})/events-(\d{5})\.ndjson(\.gz)?$")
BOT_MARKERS = ("bot", "facebookexternalhit")

# One moderately sized run shared by the read-only tests: several files per day, more defects than default.
BASE = dict(events=6000, seed=11, days=5, end_date=END, file_events=700, bad_share=0.04, duplicate_share=0.03)


@pytest.fixture(scope="module")
def validator() -> Draft202012Validator:
    schema = json.loads(CONTRACT.read_text())
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


@pytest.fixture(scope="module")
def base_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, GenerationStats]:
    out = tmp_path_factory.mktemp("base") / "events"
    return out, generate_events(str(out), **BASE)


@dataclasses.dataclass
class Line:
    """One line as read back: where it landed and what it is (`valid`, `duplicate` or a bad kind)."""

    file: str
    day: dt.date
    text: str
    kind: str
    obj: Any


def read_text(url: str) -> str:
    with fsspec.open(url, "rb", compression="infer") as handle:
        return handle.read().decode("utf-8")


def landing_day(file: str) -> dt.date:
    match = FILE_RE.search(file)
    assert match, file
    return dt.date.fromisoformat(match.group(1))


def parse_time(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))


def end_of_day(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=dt.timezone.utc)


def error_kind(error: Any) -> str:
    """Map a jsonschema error to the generator's bad-line kinds (independently of the generator's code)."""
    path = list(error.absolute_path)
    if error.validator == "required" or (error.validator == "anyOf" and not path):
        return "missing_field"
    if error.validator == "type":
        return "wrong_type"
    if error.validator == "anyOf" and path == ["ip"]:
        return "bad_format" if isinstance(error.instance, str) else "wrong_type"
    if error.validator == "format" and path == ["occurred_at"]:
        return "impossible_timestamp"
    if error.validator in ("format", "pattern", "minLength", "maxLength"):
        return "bad_format"
    raise AssertionError(f"unexpected schema error {error.validator} at {path}: {error.message}")


def classify(text: str, day: dt.date, validator: Draft202012Validator) -> tuple[str, Any]:
    """`valid` or the single defect kind of one line, by the pipeline's definition of validity."""
    try:
        obj = json.loads(text)
    except ValueError:
        return "broken_json", None
    kinds = {error_kind(e) for e in validator.iter_errors(obj)}
    if kinds:
        assert len(kinds) == 1, (kinds, text)
        return kinds.pop(), obj
    occurred = parse_time(obj["occurred_at"])
    if occurred < Y2K or occurred > end_of_day(day) + dt.timedelta(days=1):
        return "impossible_timestamp", obj
    return "valid", obj


def read_lines(stats: GenerationStats, validator: Draft202012Validator) -> Iterator[Line]:
    """Every line in landing order (day, file, line); a valid line whose id was seen before is a duplicate."""
    seen: set[str] = set()
    for file in stats.files:
        text = read_text(file)
        assert text.endswith("\n") and "\n\n" not in text and "\r" not in text
        day = landing_day(file)
        for line in text[:-1].split("\n"):
            assert line.strip(), "empty line"
            kind, obj = classify(line, day, validator)
            if kind == "valid":
                if obj["event_id"] in seen:
                    kind = "duplicate"
                seen.add(obj["event_id"])
            yield Line(file, day, line, kind, obj)


@pytest.fixture(scope="module")
def base_lines(base_run: tuple[Path, GenerationStats], validator: Draft202012Validator) -> list[Line]:
    return list(read_lines(base_run[1], validator))


def file_bytes(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# ---------------------------------------------------------------------------------------------------------------


def test_same_arguments_give_identical_bytes_and_another_seed_differs(tmp_path: Path) -> None:
    args = dict(events=2500, days=3, end_date=END, file_events=400)
    first, second, other = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    stats_a = generate_events(str(first), seed=3, **args)
    stats_b = generate_events(str(second), seed=3, **args)
    generate_events(str(other), seed=4, **args)
    a, b, c = file_bytes(first), file_bytes(second), file_bytes(other)
    assert a == b and len(a) == len(stats_a.files) > 3
    assert dataclasses.replace(stats_a, files=[]) == dataclasses.replace(stats_b, files=[])
    assert a.keys() == c.keys()
    assert all(a[name] != c[name] for name in a)


def test_gzip_output_is_deterministic_and_decompresses_to_the_plain_lines(tmp_path: Path) -> None:
    args = dict(events=3000, seed=5, days=2, end_date=END, file_events=1000)
    plain = generate_events(str(tmp_path / "plain"), **args)
    zipped = generate_events(str(tmp_path / "gz"), gzip=True, **args)
    again = generate_events(str(tmp_path / "gz2"), gzip=True, **args)
    assert [f + ".gz" for f in plain.files] == [f.replace("/gz/", "/plain/") for f in zipped.files]
    assert file_bytes(tmp_path / "gz") == file_bytes(tmp_path / "gz2")
    for plain_file, zipped_file in zip(plain.files, zipped.files):
        data = Path(zipped_file).read_bytes()
        assert data[:2] == b"\x1f\x8b"
        assert gzip.decompress(data) == Path(plain_file).read_bytes()
    assert dataclasses.replace(plain, files=[]) == dataclasses.replace(zipped, files=[])
    assert again.files == [f.replace("/gz/", "/gz2/") for f in zipped.files]


def test_memory_fsspec_url_gets_the_same_files(tmp_path: Path) -> None:
    args = dict(events=1500, seed=9, days=2, end_date=END, file_events=500)
    url = "memory://sandbox-generator-test/landing/events"
    fs = fsspec.filesystem("memory")
    try:
        stats = generate_events(url, **args)
        local = generate_events(str(tmp_path / "events"), **args)
        assert stats.files and all(f.startswith(url + "/dt=") for f in stats.files)
        assert [f[len(url):] for f in stats.files] == [f[len(str(tmp_path / "events")):] for f in local.files]
        for remote, plain in zip(stats.files, local.files):
            assert fs.cat(remote) == Path(plain).read_bytes()
    finally:
        if fs.exists("/sandbox-generator-test"):
            fs.rm("/sandbox-generator-test", recursive=True)


def test_counts_and_layout_invariants(base_run: tuple[Path, GenerationStats]) -> None:
    out, stats = base_run
    assert stats.lines == BASE["events"] == stats.valid_events + stats.duplicate_lines + stats.bad_lines
    assert stats.bad_lines == round(BASE["events"] * BASE["bad_share"]) == sum(stats.bad_by_kind.values())
    assert stats.duplicate_lines == round(BASE["events"] * BASE["duplicate_share"])
    assert list(stats.bad_by_kind) == list(BAD_KINDS) and all(stats.bad_by_kind.values())
    days = [(END - dt.timedelta(days=i)).isoformat() for i in reversed(range(BASE["days"]))]
    assert list(stats.lines_by_day) == days
    for day in days:
        assert stats.lines_by_day[day] == stats.valid_by_day[day] + stats.duplicates_by_day[day] + stats.bad_by_day[day]
    assert sum(stats.lines_by_day.values()) == stats.lines
    assert stats.files == sorted(stats.files)
    per_day = Counter(landing_day(f).isoformat() for f in stats.files)
    for day in days:
        assert per_day[day] == math.ceil(stats.lines_by_day[day] / BASE["file_events"])
        numbers = sorted(int(FILE_RE.search(f).group(2)) for f in stats.files if f"/dt={day}/" in f)
        assert numbers == list(range(per_day[day]))
    assert sorted(str(p) for p in out.rglob("*.ndjson")) == stats.files
    json.dumps(dataclasses.asdict(stats))


def test_recount_from_files_matches_stats_exactly(base_run: tuple[Path, GenerationStats], base_lines: list[Line]) -> None:
    stats = base_run[1]
    kinds = Counter(line.kind for line in base_lines)
    assert len(base_lines) == stats.lines
    assert kinds["valid"] == stats.valid_events
    assert kinds["duplicate"] == stats.duplicate_lines
    assert {k: kinds[k] for k in BAD_KINDS} == stats.bad_by_kind
    by_day: dict[str, Counter[str]] = {}
    for line in base_lines:
        by_day.setdefault(line.day.isoformat(), Counter())[line.kind] += 1
    assert {d: sum(c.values()) for d, c in by_day.items()} == stats.lines_by_day
    assert {d: c["valid"] for d, c in by_day.items()} == stats.valid_by_day
    assert {d: c["duplicate"] for d, c in by_day.items()} == stats.duplicates_by_day
    assert {d: sum(c[k] for k in BAD_KINDS) for d, c in by_day.items()} == stats.bad_by_day
    for file in stats.files:
        assert sum(line.file == file for line in base_lines) <= BASE["file_events"]


def test_valid_events_respect_the_timestamp_rules_and_some_arrive_late(
    base_run: tuple[Path, GenerationStats], base_lines: list[Line]
) -> None:
    stats = base_run[1]
    valid = [line for line in base_lines if line.kind == "valid"]
    late = 0
    for line in valid:
        occurred = parse_time(line.obj["occurred_at"])
        assert Y2K <= occurred <= end_of_day(line.day)
        if occurred < end_of_day(line.day) - dt.timedelta(days=1):
            late += 1
            assert occurred >= end_of_day(line.day) - dt.timedelta(days=4)
    assert late == stats.late_events
    assert 0.01 < late / len(valid) < 0.06
    offsets = Counter(re.search(r"(Z|[+-]\d\d:\d\d)$", line.obj["occurred_at"]).group(1) for line in valid)
    assert offsets["Z"] and offsets["+01:00"] and offsets["-05:00"] and len(offsets) >= 6
    assert any("." in line.obj["occurred_at"] for line in valid)
    assert any("." not in line.obj["occurred_at"] for line in valid)


def test_duplicates_repeat_earlier_lines_byte_for_byte(base_lines: list[Line]) -> None:
    first: dict[str, Line] = {}
    cross_file = 0
    for line in base_lines:
        if line.kind == "valid":
            first[line.obj["event_id"]] = line
        elif line.kind == "duplicate":
            original = first[line.obj["event_id"]]
            assert original.text == line.text
            cross_file += original.file != line.file
    assert 0 < cross_file < sum(line.kind == "duplicate" for line in base_lines)


def test_bad_lines_never_reuse_a_valid_event_id(base_lines: list[Line]) -> None:
    valid_ids = {line.obj["event_id"] for line in base_lines if line.kind == "valid"}
    bad_ids = [line.obj.get("event_id") for line in base_lines
               if line.kind in BAD_KINDS and isinstance(line.obj, dict)]
    assert bad_ids
    assert not valid_ids & {i for i in bad_ids if isinstance(i, str)}
    assert len(valid_ids) == sum(line.kind == "valid" for line in base_lines)


def test_traffic_looks_realistic(base_lines: list[Line]) -> None:
    events = [line.obj for line in base_lines if line.kind == "valid"]
    ips = [e["ip"] for e in events if e.get("ip")]
    ipv6 = [ip for ip in ips if ":" in ip]
    assert 0.10 < len(ipv6) / len(ips) < 0.30
    assert any("::" in ip for ip in ipv6) and any("::" not in ip for ip in ipv6)
    agents = [e.get("user_agent") or "" for e in events]
    bots = sum(any(m in ua.lower() for m in BOT_MARKERS) for ua in agents)
    assert 0.005 < bots / len(events) < 0.08
    assert len(set(agents)) > 80
    assert 0.04 < sum(not e["consent"]["analytics"] for e in events) / len(events) < 0.20
    assert 0.25 < sum(not e["consent"]["ads"] for e in events) / len(events) < 0.55
    identified = [e for e in events if e.get("user_id")]
    anonymous = [e for e in events if not e.get("user_id")]
    assert identified and all(e["anonymous_id"] for e in identified)
    assert any("user_id" not in e for e in anonymous) and any("user_id" in e for e in anonymous)
    assert any(e.get("device_id") for e in events)
    types = Counter(e["event_type"] for e in events)
    assert {"session_start", "page_view", "click", "session_end"} <= set(types)
    assert types["report_exported"] or types["contact_imported"]
    urls = [e.get("url") or "" for e in events]
    assert any("?" in u for u in urls) and any("#" in u for u in urls) and any("utm_source=" in u for u in urls)
    assert any(e.get("referrer") is None for e in events) and any(e.get("referrer") for e in events)
    assert len({e["workspace_id"] for e in events}) >= 5


def test_cli_prints_counts_only(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "landing"
    argv = ["--events", "1200", "--out", str(out), "--seed", "2", "--days", "3", "--end-date", "2026-11-24",
            "--file-events", "50", "--bad-share", "0.02", "--duplicate-share", "0.02",
            "--workspaces", str(tmp_path / "workspaces.sqlite")]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    report = json.loads(captured.out)
    assert "files" not in report and report["file_count"] > 20
    assert report["lines"] == 1200 and report["bad_lines"] == 24 and report["duplicate_lines"] == 24
    assert report["file_count"] == len(list(out.rglob("*.ndjson")))
    assert "usr_" not in captured.out and "Mozilla" not in captured.out
    assert known_workspaces(tmp_path / "workspaces.sqlite") == set(report["workspaces"]) == {
        f"ws_{i:04d}" for i in range(1, 6)}

    assert main(["--events", "100", "--out", str(tmp_path / "small"), "--end-date", "2026-11-24", "--gzip",
                 "--workspaces", str(tmp_path / "workspaces.sqlite")]) == 0
    small = json.loads(capsys.readouterr().out)
    assert small["file_count"] == len(small["files"]) == 7 and small["files"][0].endswith(".ndjson.gz")


def test_tiny_and_empty_runs_keep_the_invariants(tmp_path: Path, validator: Draft202012Validator) -> None:
    empty = generate_events(str(tmp_path / "empty"), events=0, end_date=END)
    assert empty.lines == 0 and empty.files == [] and not (tmp_path / "empty").exists()
    tiny = generate_events(str(tmp_path / "tiny"), events=4, days=2, end_date=END, bad_share=0.25, duplicate_share=0.5)
    assert tiny.lines == 4 == tiny.valid_events + tiny.duplicate_lines + tiny.bad_lines
    kinds = Counter(line.kind for line in read_lines(tiny, validator))
    assert kinds["valid"] == tiny.valid_events >= 1
    assert kinds["duplicate"] == tiny.duplicate_lines
    assert sum(kinds[k] for k in BAD_KINDS) == tiny.bad_lines


@pytest.mark.parametrize("kwargs", [
    dict(events=-1), dict(events=10, days=0), dict(events=10, file_events=0), dict(events=10, bad_share=1.5),
    dict(events=10, bad_share=0.6, duplicate_share=0.6),
])
def test_rejects_impossible_arguments(tmp_path: Path, kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        generate_events(str(tmp_path), end_date=END, **kwargs)
