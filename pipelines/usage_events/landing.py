"""The landing location: finding complete event files and reading them as arrow arrays of lines.

Everything goes through fsspec, so a local folder, `memory://` or `s3://bucket/prefix` work without code
changes (the matching fsspec backend, e.g. s3fs, must be installed). Lines are split in arrow, not in a
Python loop, and handed to DuckDB zero-copy.

Files are what trackers and people produce, so nothing in a file may stop the others: a file that cannot be
taken yet (still being written, unreadable) is skipped with a reason and looked at again by the next run, and
whatever is wrong inside a file (a cut gzip stream, a byte-order mark, another encoding, a huge line) becomes
a quarantined line with its reason, never an exception. A file is identified by what it is (its path relative
to the landing root, its size and the SHA-256 of its bytes), not by where the landing root is mounted.
"""

from __future__ import annotations

import codecs
import datetime as dt
import hashlib
import io
import re
import time
import zlib
from dataclasses import dataclass, field
from typing import Iterable, Iterator

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipelines.paths import escaped_name
from pipelines.usage_events.settings import (
    COMPLETE_SUFFIXES,
    landing_settle_seconds,
    MAX_FILE_BYTES,
    MAX_FILE_LINES,
    MAX_LINE_BYTES,
    PARTITION_PREFIX,
    QUARANTINED_HEAD_BYTES,
    READ_CHUNK_BYTES,
)

_DAY_FOLDER = re.compile(re.escape(PARTITION_PREFIX) + r"(\d{4}-\d{2}-\d{2})")
_GZIP_MAGIC = b"\x1f\x8b"
_GUNZIP_STEP = 64 * 1024
_COUNT_STEP = 1024 * 1024
_SPLIT_BLOCK = 16 * 1024 * 1024
# Byte-order marks, longest first (UTF-32 LE starts with the UTF-16 LE mark).
_BOMS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF8, "utf-8"),
         (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))


@dataclass(frozen=True)
class LandingFile:
    """One landed file: where it was read from, what it is (relative path, size, modification time) and its
    arrival day."""

    url: str
    path: str
    received_date: dt.date
    size: int
    modified: float


@dataclass(frozen=True)
class SkippedFile:
    """A landed entry not taken by this run, with the reason (a code) and whether a later run takes it."""

    path: str
    reason: str
    retried: bool = True


# Why an entry of the landing location is not read now; every one is listed in the run's metadata.
SKIP_REASONS = {
    "in_progress": "a temporary name (.tmp, ._COPYING_, .part, or a leading . or _): still being written",
    "not_settled": "modified within the settle interval: possibly still being written",
    "not_a_file": "a directory or other non-file entry inside a day folder (files belong directly in it)",
    "unsupported_name": "not <name>.ndjson or <name>.ndjson.gz",
    "undecodable_name": "the entry's name is not valid UTF-8 (shown with its bytes escaped): rename it",
    "outside_day_folder": "not inside a dt=YYYY-MM-DD folder of the landing root (at the root, or in a folder "
                          "that is not a valid day): no day to load it into",
    "unreadable": "the file could not be read (permissions, or it vanished)",
    "changed_while_reading": "its size or modification time changed while it was read",
}


@dataclass
class Discovery:
    """The complete files of a landing location, and the entries left for later or for good."""

    files: list[LandingFile] = field(default_factory=list)
    skipped: list[SkippedFile] = field(default_factory=list)


def discover(landing_url: str, received_dates: Iterable[dt.date] | None = None) -> Discovery:
    """Every entry under the landing location (optionally only some arrival days), split into complete files
    (sorted by day and path) and skipped entries with their reasons.

    The completeness rule: writers land a file under a temporary name and rename it when it is whole (a rename
    is atomic on a filesystem, an object store shows an upload only once complete), so only final names
    `<name>.ndjson[.gz]` are taken; with a settle interval (GTG_LANDING_SETTLE_SECONDS) a file must also be
    unmodified for that long.
    """
    settle_seconds = landing_settle_seconds()
    fs, root = fsspec.core.url_to_fs(landing_url)
    root = root.rstrip("/")
    wanted = set(received_dates) if received_dates is not None else None
    found = Discovery()
    now = time.time()
    for path, info, day in _entries(fs, root):
        relative = path[len(root) + 1:] if path.startswith(root + "/") else path
        if (shown := escaped_name(relative)) != relative:
            found.skipped.append(SkippedFile(shown, "undecodable_name", retried=False))
            continue
        if day is None:  # whatever the days asked for: it belongs to none of them, and nothing else reports it
            found.skipped.append(SkippedFile(relative, "outside_day_folder", retried=False))
            continue
        if wanted is not None and day not in wanted:
            continue
        reason = _not_taken(path.rsplit("/", 1)[-1], info, now, settle_seconds)
        if reason:
            found.skipped.append(SkippedFile(relative, reason, reason != "unsupported_name"))
            continue
        found.files.append(LandingFile(url=fs.unstrip_protocol(path), path=relative, received_date=day,
                                       size=int(info.get("size") or 0), modified=modified_time(info)))
    found.files.sort(key=lambda f: (f.received_date, f.path))
    found.skipped.sort(key=lambda s: s.path)
    return found


def _entries(fs, root: str) -> Iterator[tuple[str, dict, dt.date | None]]:
    """Every entry of the landing root's day folders, with its day, and every other file of the root and of
    its other folders, with none (two levels only: never deeper, so a symbolic link looping back is listed,
    not followed)."""
    if not fs.isdir(root):
        return
    for top in fs.ls(root, detail=True):
        name = top["name"].rstrip("/").rsplit("/", 1)[-1]
        day = _day_of(name)
        if top.get("type") != "directory":
            yield top["name"], top, None
            continue
        for entry in fs.ls(top["name"], detail=True):
            if day is not None or entry.get("type") == "file":
                yield entry["name"].rstrip("/"), entry, day


def _day_of(folder: str) -> dt.date | None:
    """The arrival day a `dt=YYYY-MM-DD` folder name stands for, else None."""
    match = _DAY_FOLDER.fullmatch(folder)
    try:
        return dt.date.fromisoformat(match.group(1)) if match else None
    except ValueError:
        return None


def discover_files(landing_url: str, received_dates: Iterable[dt.date] | None = None) -> list[LandingFile]:
    """The complete event files under the landing location, optionally only those of some arrival days."""
    return discover(landing_url, received_dates).files


def _not_taken(name: str, info: dict, now: float, settle_seconds: float) -> str | None:
    if name.startswith((".", "_")) or name.endswith((".tmp", "._COPYING_", "_COPYING_", ".part")):
        return "in_progress"
    if info.get("type") != "file":
        return "not_a_file"
    if not name.endswith(COMPLETE_SUFFIXES):
        return "unsupported_name"
    if settle_seconds > 0 and now - modified_time(info) < settle_seconds:
        return "not_settled"
    return None


def modified_time(info: dict) -> float:
    """Seconds since the epoch of an fsspec `info` (local `mtime`, object stores' `LastModified`, or the
    in-memory filesystem's `created`); 0 when the backend tells none."""
    value = info.get("mtime", info.get("LastModified", info.get("created")))
    if isinstance(value, dt.datetime):
        return value.timestamp()
    return float(value or 0)


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


@dataclass(frozen=True)
class Defect:
    """Why a line is quarantined before it is parsed, what of it is kept (escaped text, at most
    `QUARANTINED_HEAD_BYTES` unless it is an invalid UTF-8 line) and its size in bytes."""

    reason: str
    detail: str
    raw: str
    size: int


# Quarantine reasons found while reading a file, before any line is parsed (the contract's own reasons follow).
READ_DEFECTS = {
    "invalid_utf8": "the line is not valid UTF-8",
    "line_too_long": f"the line is longer than {MAX_LINE_BYTES} bytes: not parsed",
    "truncated_file": "the gzip stream ends before its end marker: the file was cut here",
    "corrupt_file": "the gzip stream is corrupt from here on",
    "undecodable_file": "the file starts with a UTF-16/32 byte-order mark but does not decode: kept whole",
    "file_too_large": f"the file holds more than {MAX_FILE_BYTES} bytes (uncompressed): the rest is not read",
    "too_many_lines": f"the file holds more than {MAX_FILE_LINES} lines: the rest is not read",
}


def _defect(reason: str, raw: str = "", size: int = 0) -> Defect:
    """A read defect with its reason's detail (`READ_DEFECTS`): nothing kept of it unless `raw` is given."""
    return Defect(reason, READ_DEFECTS[reason], raw, size)


@dataclass
class FileLines:
    """The lines of one file: `lines` is a string array (in blocks) with nulls where `defects` (by line number,
    from 1) quarantines a line unparsed. `sha256` and `size` are of the file's bytes as stored."""

    lines: pa.ChunkedArray
    defects: dict[int, Defect]
    sha256: str
    size: int


class FileChanged(Exception):
    """The file's size or modification time changed while it was read: it is not complete yet."""


def read_lines(landing_file: LandingFile) -> FileLines:
    """Read a landed NDJSON file (gzipped or not, by its content) and split it into lines without a per-line
    Python loop.

    A final newline ends the last line rather than starting an empty one; a Windows line end loses its carriage
    return. Raises OSError when the file cannot be read and FileChanged when it changed since it was listed.
    """
    fs, path = fsspec.core.url_to_fs(landing_file.url)
    digest = hashlib.sha256()
    with fs.open(path, "rb") as handle:
        # What is read (a buffer of the listed size, not of the limit); beyond the limit bytes are only hashed.
        stored = handle.read(min(MAX_FILE_BYTES, landing_file.size + 1))
        digest.update(stored)
        size = len(stored)
        while piece := handle.read(_GUNZIP_STEP * 16):
            digest.update(piece)
            size += len(piece)
    info = fs.info(path)
    if size != landing_file.size or int(info.get("size") or 0) != size or modified_time(info) != landing_file.modified:
        raise FileChanged(landing_file.path)
    too_large = size > len(stored)
    if stored[:2] == _GZIP_MAGIC:
        data, cut = _gunzip(stored)
        cut = "file_too_large" if too_large and cut == "truncated_file" else cut
    else:
        data, cut = stored, ("file_too_large" if too_large else None)
    data, undecodable = _as_utf8(data)
    if undecodable:
        defect = _defect("undecodable_file", _escaped(data), len(data))
        return FileLines(pa.chunked_array([pa.nulls(1, pa.large_string())]), {1: defect}, digest.hexdigest(), size)
    data, cut = _within_line_cap(data, cut)
    lines, defects = _split(data, cut)
    return FileLines(lines, defects, digest.hexdigest(), size)


def _gunzip(stored: bytes) -> tuple[bytes, str | None]:
    """Decompress every gzip member, keeping all that decompresses before a cut (and what came before the
    corrupt step of a corrupt stream), and at most `MAX_FILE_BYTES` (a small file can inflate to any size); the
    second value says what ended it early (None: whole)."""
    out = io.BytesIO()
    view = memoryview(stored)
    position = 0
    while position < len(view):
        stream = zlib.decompressobj(wbits=31)
        try:
            while not stream.eof and position < len(view):
                pending = view[position:position + _GUNZIP_STEP]
                position += len(pending)
                while pending:
                    out.write(stream.decompress(pending, MAX_FILE_BYTES + 1 - out.tell()))
                    if out.tell() > MAX_FILE_BYTES:
                        out.truncate(MAX_FILE_BYTES)
                        return out.getvalue(), "file_too_large"
                    pending = stream.unconsumed_tail
        except zlib.error:
            return out.getvalue(), "corrupt_file"
        if not stream.eof:
            return out.getvalue(), "truncated_file"
        position -= len(stream.unused_data)  # the next member starts in what this one left of its last step
        if bytes(view[position:position + 2]) != _GZIP_MAGIC:
            return out.getvalue(), (None if not any(view[position:]) else "corrupt_file")  # zero padding is harmless
    return out.getvalue(), None


def _within_line_cap(data: bytes, cut: str | None, cap: int | None = None) -> tuple[bytes, str | None]:
    """`data` up to the end of its `cap`-th line (default MAX_FILE_LINES) and `too_many_lines` when more
    follows, else both unchanged. Newlines are counted a megabyte at a time before anything is split, so a
    file of millions of empty lines costs no more memory than its bytes."""
    cap = MAX_FILE_LINES if cap is None else cap
    seen = 0
    for start in range(0, len(data), _COUNT_STEP):
        found = data.count(b"\n", start, start + _COUNT_STEP)
        if seen + found < cap:
            seen += found
            continue
        block = np.frombuffer(data, np.uint8, count=min(_COUNT_STEP, len(data) - start), offset=start)
        ends = np.flatnonzero(block == ord("\n"))
        end = start + int(ends[cap - seen - 1]) + 1
        return (data, cut) if end == len(data) else (data[:end], "too_many_lines")
    return data, cut


def _as_utf8(data: bytes) -> tuple[bytes, bool]:
    """The file's text as UTF-8 without a byte-order mark; UTF-16 and UTF-32 files (known by their mark) are
    decoded. True when a marked file does not decode (it is then quarantined whole)."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            if encoding == "utf-8":
                return data[len(bom):], False
            try:
                return data.decode(encoding).encode("utf-8", errors="surrogatepass"), False
            except UnicodeError:
                return data, True
    return data, False


def _split(data: bytes, cut: str | None) -> tuple[pa.ChunkedArray, dict[int, Defect]]:
    """Lines of `data`, with the defects found before parsing (see `_split_block`), split a block of about
    _SPLIT_BLOCK bytes of whole lines at a time: arrow's split grows its output as it goes, so splitting a
    256 MB file at once held twice its size on top of the file; a line longer than a block is never copied."""
    blocks = list(_line_blocks(data)) or [(0, 0)]
    chunks: list[pa.Array] = []
    defects: dict[int, Defect] = {}
    first = 0
    for number, (start, end) in enumerate(blocks):
        lines, found = _split_block(data, start, end, cut if number == len(blocks) - 1 else None)
        defects.update((first + n, defect) for n, defect in found.items())
        chunks.append(lines)
        first += len(lines)
    return pa.chunked_array(chunks, pa.large_string()), defects


def _line_blocks(data: bytes) -> Iterator[tuple[int, int]]:
    """(start, end) byte ranges of `data`, each whole lines (ending after a newline, or at the end) of at most
    _SPLIT_BLOCK bytes, or one line longer than that."""
    start = 0
    while start < len(data):
        end = data.rfind(b"\n", start, start + _SPLIT_BLOCK)
        if end < 0:
            end = data.find(b"\n", start + _SPLIT_BLOCK)
        end = len(data) if end < 0 or start + _SPLIT_BLOCK >= len(data) else end + 1
        yield start, end
        start = end


def _split_block(data: bytes, start: int, end: int, cut: str | None) -> tuple[pa.Array, dict[int, Defect]]:
    """The lines of `data[start:end]` and their defects (line numbers from 1 within the block); a block that
    is one line longer than _SPLIT_BLOCK is quarantined as `line_too_long` (or as the `cut`, when it is the
    partial last line of a cut file) without being copied."""
    whole = data[end - 1:end] == b"\n"
    size = end - start - whole
    if end - start <= _SPLIT_BLOCK or size <= MAX_LINE_BYTES:
        return _split_lines(data[start:end], cut)
    head = _escaped(data[start:start + min(size, QUARANTINED_HEAD_BYTES)])
    if cut and not whole:
        return pa.nulls(1, pa.large_string()), {1: _defect(cut, head, size)}
    defects = {1: _defect("line_too_long", head, size)}
    if cut:
        defects[2] = _defect(cut)
    return pa.nulls(len(defects), pa.large_string()), defects


def _split_lines(data: bytes, cut: str | None) -> tuple[pa.Array, dict[int, Defect]]:
    """Lines of `data`, with the defects found before parsing: lines too long to parse, lines not UTF-8, and
    where a gzip stream was `cut`, the cut itself (the partial last line, or an empty one after a whole line)."""
    parts = pc.split_pattern(_one_value(data), b"\n").flatten() if data else pa.array([], pa.large_binary())
    if data.endswith(b"\n"):
        parts = parts.slice(0, len(parts) - 1)
    defects: dict[int, Defect] = {}
    if cut:
        if data and not data.endswith(b"\n"):
            tail = parts.slice(len(parts) - 1)
            defects[len(parts)] = _defect(cut, _escaped(pc.binary_slice(tail, 0, QUARANTINED_HEAD_BYTES)[0].as_py()),
                                          pc.binary_length(tail)[0].as_py())
        else:
            parts = pa.concat_arrays([parts, pa.array([b""], pa.large_binary())])
            defects[len(parts)] = _defect(cut)
    too_long = pc.greater(pc.binary_length(parts), MAX_LINE_BYTES)
    if pc.any(too_long).as_py():
        positions = pc.indices_nonzero(too_long).to_pylist()
        long_parts = parts.take(positions)
        heads = pc.binary_slice(long_parts, 0, QUARANTINED_HEAD_BYTES).to_pylist()
        for position, head, size in zip(positions, heads, pc.binary_length(long_parts).to_pylist()):
            defects.setdefault(position + 1, _defect("line_too_long", _escaped(head), size))
        parts = pc.if_else(too_long, pa.scalar(b"", pa.large_binary()), parts)
    text = parts.view(pa.large_string())
    try:
        text.validate(full=True)
    except pa.ArrowInvalid:
        text = _decode_lines(parts, defects)
    text = _strip_cr(text)
    if defects:
        keep = np.ones(len(text), dtype=bool)
        keep[[n - 1 for n in defects]] = False
        text = pc.if_else(pa.array(keep), text, pa.scalar(None, pa.large_string()))
    return text, defects


def _one_value(data: bytes) -> pa.Array:
    """`data` as a one-element binary array over the same memory (`pa.array([data])` would copy it)."""
    offsets = pa.array([0, len(data)], pa.int64()).buffers()[1]
    return pa.Array.from_buffers(pa.large_binary(), 1, [None, offsets, pa.py_buffer(data)])


def _strip_cr(lines: pa.Array) -> pa.Array:
    """Windows line endings: drop one trailing carriage return per line."""
    return pc.replace_substring_regex(lines, r"\r$", "") if pc.any(pc.ends_with(lines, "\r")).as_py() else lines


def _decode_lines(parts: pa.Array, defects: dict[int, Defect]) -> pa.Array:
    """The slow path for a file with undecodable bytes: decode line by line, keep the bad ones escaped."""
    decoded: list[str | None] = []
    for index, raw in enumerate(parts.to_pylist()):
        try:
            decoded.append(raw.decode("utf-8"))
        except UnicodeDecodeError:
            decoded.append(None)
            defects.setdefault(index + 1, _defect("invalid_utf8", _escaped(raw, None), len(raw)))
    return pa.array(decoded, pa.large_string())


def _escaped(raw: bytes, limit: int | None = QUARANTINED_HEAD_BYTES) -> str:
    """What the quarantine keeps of an unparsed line: its text with undecodable bytes escaped (only its head,
    when it is a cut, an undecodable file or a line too long to parse)."""
    return raw[:limit].decode("utf-8", errors="backslashreplace")
