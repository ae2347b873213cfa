"""A fuzzer over whole landed files: whatever the files hold and wherever they are put, the day loads, every
entry of the landing location is either read or named with its reason, and every line read is exactly one of
loaded, duplicate or quarantined (in the run's report, the ledger and the tables alike).

Hypothesis builds landing days of several files, each a mix of valid events (with hostile values in every
free-text field), duplicates, random JSON, random bytes and unicode, written plain, with a byte-order mark,
as UTF-16, gzipped, or gzipped and cut. The budget is bounded for CI (`GTG_FUZZ_EXAMPLES`, default 20
deterministic examples, each a real dlt load); set it higher to search with random seeds.
"""

from __future__ import annotations

import codecs
import gzip
import json
import os
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import Platform

_EXAMPLES = os.environ.get("GTG_FUZZ_EXAMPLES")
KNOWN = ("ws_a", "ws_b")

_free_text = st.text(max_size=40) | st.sampled_from(["%ff", "%", "%e2%82", "?utm_source=%ff&utm_medium=x%40y",
                                                     "\u0000", "\ud7ff", "'; DROP TABLE x; --", "\\u0000"])
_ips = st.sampled_from(["192.0.2.1", "::ffff:192.0.2.128", "2001:db8::1", "::", "0.0.0.0", "999.1.1.1",
                        "fe80::1%eth0", "::ffff:0:0", "1.2.3.04"]) | _free_text


@st.composite
def _event(draw) -> dict:
    event = {
        "event_id": str(draw(st.uuids(version=4))),
        "workspace_id": draw(st.sampled_from([*KNOWN, "ws_unknown", "_unattributed", "bad id"])),
        "event_type": draw(st.sampled_from(["page_view", "click", "identify", "Bad Type"])),
        "occurred_at": draw(st.sampled_from(["2026-11-24T10:00:00Z", "2026-11-24T10:00:00.123+02:00",
                                             "2026-02-30T00:00:00Z", "1999-12-31T23:59:59Z"])),
        "anonymous_id": draw(_free_text),
        "consent": {"analytics": draw(st.booleans()), "ads": draw(st.booleans())},
    }
    optional = {"user_id": _free_text, "device_id": _free_text, "ip": _ips, "user_agent": _free_text,
                "url": _free_text.map(lambda t: "https://app.gtgcrm.com/p?utm_source=" + t),
                "referrer": _free_text, "properties": st.dictionaries(st.text(max_size=5), _free_text, max_size=3)}
    for name, strategy in optional.items():
        if draw(st.booleans()):
            event[name] = draw(st.none() | strategy)
    return event


_json = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
                     lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
                     max_leaves=8)
_line = st.one_of(
    _event().map(lambda e: json.dumps(e, ensure_ascii=False).encode("utf-8", "surrogatepass")),
    _event().map(lambda e: json.dumps(e).encode()),
    _json.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=60),
    st.text(max_size=30).map(lambda t: t.encode("utf-8", "surrogatepass")),
).map(lambda raw: raw.replace(b"\n", b" "))


@st.composite
def _file(draw, earlier: list[bytes]) -> tuple[str, bytes]:
    lines = draw(st.lists(_line, max_size=25))
    for _ in range(draw(st.integers(0, 3))):  # duplicates of lines of this file or an earlier one
        pool = earlier + lines
        if pool:
            lines.insert(draw(st.integers(0, len(lines))), draw(st.sampled_from(pool)))
    earlier.extend(lines)
    body = draw(st.sampled_from([b"\n", b"\r\n"])).join(lines) + draw(st.sampled_from([b"", b"\n"]))
    form = draw(st.sampled_from(["plain", "bom", "utf16", "gzip", "gzip-members", "gzip-cut", "gzip-utf16"]))
    if form == "bom":
        body = codecs.BOM_UTF8 + body
    elif form in ("utf16", "gzip-utf16"):
        body = codecs.BOM_UTF16_LE + body.decode("utf-8", "replace").encode("utf-16-le", "surrogatepass")
    name = draw(st.sampled_from(["a.ndjson", "b.ndjson", "c.ndjson.tmp", "d.ndjson.gz", "e.ndjson"]))
    if form == "gzip-members":  # concatenated members, as `cat a.gz b.gz` or an appending collector writes
        at = draw(st.integers(0, len(body)))
        body = gzip.compress(body[:at]) + gzip.compress(body[at:])
    elif form.startswith("gzip"):
        body = gzip.compress(body)
        if form == "gzip-cut":
            body = body[: draw(st.integers(0, max(0, len(body) - 1)))]
    return name, body


# Where else a file may be put, and why the run names it instead of reading it: at the root, in a folder that
# is no valid day or is no day at all, one folder down in a day, or under a name that is not UTF-8 (a lone
# surrogate is how Python spells a byte of a file name that is not UTF-8).
_STRAY = {"{name}": "outside_day_folder", "dt=2026-13-01/{name}": "outside_day_folder",
          "misc/{name}": "outside_day_folder", "dt=2026-11-24/hour=10/{name}": "not_a_file",
          "dt=2026-11-24/\udcff{name}": "undecodable_name", "dt=2026-11-2\udce9/{name}": "undecodable_name"}


@st.composite
def _landing(draw) -> dict[str, bytes]:
    earlier: list[bytes] = []
    files: dict[str, bytes] = {}
    for day in draw(st.lists(st.sampled_from(["2026-11-23", "2026-11-24"]), min_size=1, max_size=3)):
        name, body = draw(_file(earlier))
        files[f"dt={day}/{name}"] = body
        if draw(st.booleans()):  # the same file landed again on the other day
            other = "2026-11-23" if day == "2026-11-24" else "2026-11-24"
            files.setdefault(f"dt={other}/{name}", body)
    for place in draw(st.lists(st.sampled_from(sorted(_STRAY)), max_size=2, unique=True)):
        name, body = draw(_file(earlier))
        files[place.format(name=name)] = body
    return files


def _named(path: str) -> tuple[str, str] | None:
    """The entry and reason a run names for a landed path it does not read (None: it is read)."""
    for place, reason in _STRAY.items():
        head, tail = place.split("{name}")
        if path.startswith(head) and path.endswith(tail) and "/" not in path[len(head):]:
            shown = path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
            return (shown.rsplit("/", 1)[0] if reason == "not_a_file" else shown), reason
    return (path, "in_progress") if path.endswith(".tmp") else None


@settings(max_examples=int(_EXAMPLES or 20), deadline=None, database=None, derandomize=_EXAMPLES is None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(_landing())
def test_any_landing_day_loads_and_accounts_for_every_line(files: dict[str, bytes]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        platform = Platform(Path(tmp) / "data")
        platform.register_workspaces(*KNOWN)
        for path, body in files.items():
            (platform.landing / path).parent.mkdir(parents=True, exist_ok=True)
            (platform.landing / path).write_bytes(body)

        report = platform.ingest()
        again = platform.ingest()

        assert report.lines == report.events_loaded + report.duplicates_dropped + report.lines_quarantined
        read = [p for p in files if _named(p) is None]
        assert report.files_read == len(read)
        assert report.skipped_files == dict(named for p in files if (named := _named(p)) is not None)
        assert (again.files_read, again.lines) == (0, 0)
        stored = {t for (t,) in platform.query("SELECT table_name FROM duckdb_tables() WHERE schema_name = 'raw_events'")
                  } if platform.warehouse.exists() else set()
        ledger = platform.query(
            "SELECT count(*), coalesce(sum(lines), 0), coalesce(sum(events_loaded), 0), "
            "coalesce(sum(duplicates_dropped), 0), coalesce(sum(lines_quarantined), 0) FROM raw_events.landing_files"
        ) if "landing_files" in stored else [(0, 0, 0, 0, 0)]
        assert ledger == [(report.files_read, report.lines, report.events_loaded, report.duplicates_dropped,
                           report.lines_quarantined)]
        events = platform.query("SELECT count(*), count(DISTINCT event_id) FROM raw_events.usage_events") \
            if "usage_events" in stored else [(0, 0)]
        quarantined = platform.query("SELECT count(*) FROM raw_events.usage_events_quarantine") \
            if "usage_events_quarantine" in stored else [(0,)]
        assert (events, quarantined) == ([(report.events_loaded,) * 2], [(report.lines_quarantined,)])
        for path, body in ((p, files[p]) for p in read):  # whole UTF-8 files: the ledger's line count is the file's
            try:
                text = gzip.decompress(body) if body.startswith(b"\x1f\x8b") else body
            except (EOFError, OSError):
                continue  # a cut stream: the count is the lines before the cut and the cut, checked elsewhere
            if not path.endswith(".tmp") and not text.startswith(codecs.BOM_UTF16_LE):
                text = text.removeprefix(codecs.BOM_UTF8)
                expected = text.count(b"\n") + (0 if text.endswith(b"\n") or not text else 1)
                assert platform.query("SELECT lines FROM raw_events.landing_files WHERE file_path = ?", [path]) == [
                    (expected,)]
