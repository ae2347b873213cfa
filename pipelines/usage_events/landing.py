"""The landing location: finding event files and reading them as arrow arrays of lines.

Everything goes through fsspec, so a local folder, `memory://` or `s3://bucket/prefix` work without code
changes (the matching fsspec backend, e.g. s3fs, must be installed). Lines are split in arrow, not in a
Python loop, and handed to DuckDB zero-copy.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Iterable, Iterator

import fsspec
import pyarrow as pa
import pyarrow.compute as pc

from pipelines.usage_events.settings import LANDING_GLOB, PARTITION_PREFIX, READ_CHUNK_BYTES

_PARTITION_DIR = re.compile(re.escape(PARTITION_PREFIX) + r"(\d{4}-\d{2}-\d{2})/[^/]+$")


@dataclass(frozen=True)
class LandingFile:
    """One landed file: its URL (the exactly-once key), its arrival day and size."""

    url: str
    received_date: dt.date
    size: int


def discover_files(
    landing_url: str, received_dates: Iterable[dt.date] | None = None
) -> list[LandingFile]:
    """All event files under the landing location, optionally only those of some arrival days, sorted."""
    fs, root = fsspec.core.url_to_fs(landing_url)
    wanted = set(received_dates) if received_dates is not None else None
    found: list[LandingFile] = []
    for path, info in fs.glob(f"{root.rstrip('/')}/{LANDING_GLOB}", detail=True).items():
        match = _PARTITION_DIR.search(path)
        if match is None or info.get("type") == "directory":
            continue
        try:
            day = dt.date.fromisoformat(match.group(1))
        except ValueError:
            continue
        if wanted is not None and day not in wanted:
            continue
        found.append(LandingFile(url=fs.unstrip_protocol(path), received_date=day, size=int(info.get("size") or 0)))
    return sorted(found, key=lambda f: (f.received_date, f.url))


def landing_days(landing_url: str) -> list[dt.date]:
    """The arrival days that have files, for sensors and the main job."""
    return sorted({f.received_date for f in discover_files(landing_url)})


def chunk_files(files: list[LandingFile], chunk_bytes: int = READ_CHUNK_BYTES) -> Iterator[list[LandingFile]]:
    """Group files so that each group holds about `chunk_bytes` (compressed size is a fair proxy)."""
    group: list[LandingFile] = []
    size = 0
    for f in files:
        group.append(f)
        size += f.size
        if size >= chunk_bytes:
            yield group
            group, size = [], 0
    if group:
        yield group


@dataclass
class FileLines:
    """The lines of one file: `lines` is a string array with nulls where a line is not valid UTF-8."""

    lines: pa.Array
    invalid_utf8: dict[int, str]


def read_lines(url: str) -> FileLines:
    """Read a (possibly gzipped) NDJSON file and split it into lines without a per-line Python loop.

    A final newline ends the last line rather than starting an empty one. Lines that are not valid UTF-8
    become nulls (kept aside, escaped, for the quarantine), so one bad byte never rejects a whole file.
    """
    with fsspec.open(url, "rb", compression="infer") as handle:
        data = handle.read()
    if not data:
        return FileLines(pa.array([], pa.large_string()), {})
    parts = pc.split_pattern(_one_value(data), b"\n").flatten()
    if data.endswith(b"\n"):
        parts = parts.slice(0, len(parts) - 1)
    text = parts.view(pa.large_string())
    try:
        text.validate(full=True)
        return FileLines(_strip_cr(text), {})
    except pa.ArrowInvalid:
        return _split_invalid_utf8(parts)


def _one_value(data: bytes) -> pa.Array:
    """`data` as a one-element binary array over the same memory (`pa.array([data])` would copy it)."""
    offsets = pa.array([0, len(data)], pa.int64()).buffers()[1]
    return pa.Array.from_buffers(pa.large_binary(), 1, [None, offsets, pa.py_buffer(data)])


def _strip_cr(lines: pa.Array) -> pa.Array:
    """Windows line endings: drop one trailing carriage return per line."""
    return pc.replace_substring_regex(lines, r"\r$", "") if pc.any(pc.ends_with(lines, "\r")).as_py() else lines


def _split_invalid_utf8(parts: pa.Array) -> FileLines:
    """The slow path for a file with undecodable bytes: decode line by line, keep the bad ones escaped."""
    decoded: list[str | None] = []
    invalid: dict[int, str] = {}
    for index, raw in enumerate(parts.to_pylist()):
        try:
            decoded.append(raw.decode("utf-8"))
        except UnicodeDecodeError:
            decoded.append(None)
            invalid[index + 1] = raw.decode("utf-8", errors="backslashreplace")
    return FileLines(_strip_cr(pa.array(decoded, pa.large_string())), invalid)
