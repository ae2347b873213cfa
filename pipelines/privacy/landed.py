"""Landed files as the privacy engine handles them: found without leaving the landing root, their lines read
whatever their encoding, each line's workspace and identifiers read as JSON, and files replaced safely.

Shared by the erasure scrub (`pipelines.privacy.scrub`) and the landed-file lifecycle
(`pipelines.privacy.landed_lifecycle`), so both see the same lines as belonging to the same people:

- A line is decoded as UTF-8, or as Latin-1 when it is not valid UTF-8 (Latin-1 never fails and maps every
  ASCII byte to itself), so a tracker that sent one non-UTF-8 byte still says whose the line is.
- A line that parses as a JSON object is read by its top-level fields only: a tracker that sorts keys, and
  so writes `properties.user_id` before the top-level `user_id`, cannot make another field count. A line
  that does not parse is read conservatively: every `"<field>": "<value>"` pair in it counts.
- Symlinks are followed only when they stay inside the landing root: a link pointing elsewhere is neither
  read nor rewritten (the file it points to is not the platform's).
- A file is replaced through a scratch copy in the work folder (never in the landing folder), with its
  mode kept, then an atomic rename; a run killed mid-write leaves the original whole, and the scratch copy
  is removed at the next start. A rewrite that would leave no line removes the file instead, so no empty
  (or 20-byte empty `.gz`) file is left for a replay to trip on.
- A plain local file can instead lose lines in place (`blank_ranges`, `blank`): the bytes of a line are
  overwritten with spaces and joined to a neighbouring line as JSON whitespace, so the file keeps its size and
  every other line its bytes and offset, and only the pages holding the erased lines are written.
"""

from __future__ import annotations

import errno
import fcntl
import mmap
import os
import re
import shutil
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from fsspec.implementations.local import LocalFileSystem

from pipelines import paths
from pipelines.catalog import LandingZone
from pipelines.privacy.subjects import normalise_stored
from pipelines.sql import literal
from pipelines.workspaces import UNATTRIBUTED_WORKSPACE

SCRATCH_PREFIX = "landed-"
_SIBLING_PREFIX = ".gtg-landed-"  # only when the work folder is on another file system than the landing root
_NON_SPACE = re.compile(rb"\S")


@dataclass
class ZoneFiles:
    """The files of a landing zone that the platform may read and rewrite (resolved inside the root)."""

    fs: fsspec.AbstractFileSystem
    root: str
    paths: list[str]
    links_outside: int  # globbed paths that resolve outside the root: skipped

    @property
    def local(self) -> bool:
        return isinstance(self.fs, LocalFileSystem)

    def url(self, path: str) -> str:
        """The URL the ingestion ledger records for `path`."""
        return self.fs.unstrip_protocol(path)


def zone_files(zone: LandingZone, url: str) -> ZoneFiles:
    """Every file matching the zone's glob, links resolved: a link to a file inside the root counts once as
    that file, a link leading outside it is left alone."""
    fs, root = fsspec.core.url_to_fs(url)
    found = sorted(p for p in fs.glob(f"{root.rstrip('/')}/{zone.glob}") if not fs.isdir(p))
    if not isinstance(fs, LocalFileSystem):
        return ZoneFiles(fs, root, found, 0)
    inside = [p for p in found if _inside(root, p)]
    real = sorted({os.path.realpath(p) for p in inside})
    return ZoneFiles(fs, root, real, len(found) - len(inside))


def _inside(root: str, path: str) -> bool:
    """Whether `path`, links resolved, stays inside `root`: a link pointing elsewhere is neither read nor
    rewritten (the file it points to is not the platform's)."""
    try:
        paths.inside(Path(root), path)
    except paths.OutsideFolderError:
        return False
    return True


def read_bytes(files: ZoneFiles, path: str) -> bytes:
    with files.fs.open(path, "rb", compression="infer") as handle:
        return handle.read()


# Files whose bytes are not one line per newline-ended run of ASCII-compatible text: compressed (gzip) or
# UTF-16/32 (marked); they are always read whole and rewritten.
_NOT_PLAIN = (b"\x1f\x8b", b"\xff\xfe", b"\xfe\xff", b"\x00\x00\xfe\xff")


def map_plain(files: ZoneFiles, path: str) -> mmap.mmap | None:
    """The bytes of a local uncompressed file, mapped (only the pages touched are read), or None for a file
    that is compressed, UTF-16/32, empty or not local."""
    if not files.local or fsspec.utils.infer_compression(path) is not None:
        return None
    with open(path, "rb") as handle:
        if os.fstat(handle.fileno()).st_size == 0:
            return None
        mapped = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
    if mapped[:4].startswith(_NOT_PLAIN):
        mapped.close()
        return None
    return mapped


def split_lines(data: bytes) -> pa.Array:
    """The lines of `data` as a binary array (a final newline ends the last line)."""
    if not data:
        return pa.array([], pa.large_binary())
    offsets = pa.array([0, len(data)], pa.int64()).buffers()[1]
    whole = pa.Array.from_buffers(pa.large_binary(), 1, [None, offsets, pa.py_buffer(data)])
    parts = pc.split_pattern(whole, b"\n").flatten()
    return parts.slice(0, len(parts) - 1) if data.endswith(b"\n") else parts


def decode_lines(lines: pa.Array) -> pa.Array:
    """Lines as text: UTF-8 where valid, else Latin-1 (a Windows line end's carriage return is JSON
    whitespace: it changes no field)."""
    text = lines.view(pa.large_string())
    try:
        text.validate(full=True)
    except pa.ArrowInvalid:
        decoded = []
        for raw in lines.to_pylist():
            try:
                decoded.append(raw.decode("utf-8"))
            except UnicodeDecodeError:
                decoded.append(raw.decode("latin-1"))
        text = pa.array(decoded, pa.large_string())
    return text


def subject_forms(zone: LandingZone, which: pa.Array, values: pa.Array) -> pa.Array:
    """Landed identifiers (`which`: the 1-based subject field each value came from, 0 for none) in the form
    requests name them (`subjects.normalise_stored`: `" u1"` is `"u1"`), the form the events source stores: an
    erasure's blind index then finds a line whatever padding the tracker sent."""
    forms = values
    for i, kind in enumerate(zone.subject_kinds, 1):
        forms = pc.if_else(pc.equal(which, i), normalise_stored(kind, values), forms)
    return forms


def lines_table(lines: pa.Array, line_nos: list[int] | None = None) -> pa.Table:
    """(line_no, text) for DuckDB: line numbers count from 0 over `lines`, or are `line_nos` (the numbers in
    their file of lines taken from it)."""
    numbers = pa.array(range(len(lines)) if line_nos is None else line_nos, pa.int64())
    return pa.table({"line_no": numbers, "text": decode_lines(lines)})


def line_fields_sql(zone: LandingZone, source: str) -> str:
    """A SELECT over `source` (line_no, text) giving each line's workspace (`_unattributed` when it is not a
    valid workspace id) and, per subject field of the zone, the list of values the line gives it."""
    fields = [zone.workspace_field, *zone.subject_fields]
    paths_list = "[" + ", ".join(literal(f'$."{f}"') for f in fields) + "]"

    def loose(field: str) -> str:
        return f"regexp_extract_all(text, {literal(_loose_pattern(field))}, 1)"

    per_field = ", ".join(
        f"CASE WHEN top IS NOT NULL THEN [top[{i + 2}]] ELSE {loose(f)} END AS {f}"
        for i, f in enumerate(zone.subject_fields)
    )
    workspace = f"CASE WHEN top IS NOT NULL THEN top[1] ELSE {loose(zone.workspace_field)}[1] END"
    return (
        f"SELECT line_no, CASE WHEN regexp_matches(coalesce(ws_raw, ''), {literal(zone.workspace_pattern)}) "
        f"THEN ws_raw ELSE {literal(UNATTRIBUTED_WORKSPACE)} END AS ws, {', '.join(zone.subject_fields)} FROM ("
        f"SELECT line_no, {workspace} AS ws_raw, {per_field} FROM ("
        f"SELECT line_no, text, CASE WHEN json_valid(text) AND json_type(text) = 'OBJECT' "
        f"THEN json_extract_string(text, {paths_list}) END AS top FROM {source}))"
    )


def _loose_pattern(field: str) -> str:
    """`"field": "value"` anywhere in a line that is not valid JSON (a regular expression)."""
    return f'"{field}"\\s*:\\s*"([^"\\\\]*)"'


def scratch_dir(zone: LandingZone, work_dir: Path | None) -> Path:
    """This zone's scratch folder in the work folder, 0700."""
    return paths.private_dir((work_dir or paths.work_dir()) / f"{SCRATCH_PREFIX}{zone.name}")


@contextmanager
def zone_lock(files: ZoneFiles, scratch: Path) -> Iterator[None]:
    """Hold the zone exclusively (scrub and lifecycle never rewrite one file at once), then remove what a
    killed earlier run left in the scratch folder and, locally, beside the landed files."""
    handle = os.open(files.root, os.O_RDONLY) if files.local and os.path.isdir(files.root) else None
    try:
        if handle is not None:
            fcntl.flock(handle, fcntl.LOCK_EX)
        for leftover in scratch.iterdir():
            leftover.unlink(missing_ok=True)
        if handle is not None:
            for leftover in Path(files.root).rglob(f"{_SIBLING_PREFIX}*"):
                leftover.unlink(missing_ok=True)
        yield
    finally:
        if handle is not None:
            os.close(handle)  # releases the lock


def replace_file(files: ZoneFiles, target: str, scratch: Path, write: Callable[[str], None],
                 mode: int | None = None) -> None:
    """Replace (or create) `target` with what `write(local_path)` writes, atomically.

    The new content is written into `scratch` (a private 0600 file), given `mode` (default: the target's
    current mode, else 0600), then renamed over the target. Locally across file systems the copy goes to a
    hidden sibling first (removed at the next start if a crash leaves it); elsewhere (object stores) the
    upload is the atomic step."""
    temporary = scratch / f"{uuid.uuid4().hex}.tmp"
    os.close(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    try:
        write(str(temporary))
        if not files.local:
            files.fs.put_file(str(temporary), target)
            return
        if mode is None:
            mode = os.stat(target).st_mode & 0o7777 if os.path.exists(target) else 0o600
        os.chmod(temporary, mode)
        _fsync(temporary)
        # New folders (the archive's) are 0700 through the process umask; an existing landing folder keeps its mode.
        Path(target).parent.mkdir(parents=True, exist_ok=True)
        try:
            os.replace(temporary, target)
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
            sibling = Path(target).with_name(f"{_SIBLING_PREFIX}{uuid.uuid4().hex}")
            shutil.copy2(temporary, sibling)
            os.replace(sibling, target)
    finally:
        temporary.unlink(missing_ok=True)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def line_starts(lines: pa.Array) -> np.ndarray:
    """The byte offset in its file of each line `split_lines` returned (each line was followed by one newline)."""
    if not len(lines):
        return np.zeros(0, np.int64)
    offsets = np.frombuffer(lines.buffers()[1], np.int64)[lines.offset:lines.offset + len(lines)]
    return offsets - offsets[0] + np.arange(len(offsets))


def line_at(data: bytes, start: int) -> bytes:
    """The line of `data` beginning at byte `start`, without its newline."""
    end = data.find(b"\n", start)
    return data[start:end if end >= 0 else len(data)]


def without_lines(data: bytes, starts: list[int]) -> list[memoryview]:
    """The parts of `data` left once the lines beginning at the (sorted) byte offsets `starts` are cut out,
    newlines included, as views (no copy of the kept bytes). When the last line had no final newline and is
    cut, the new last line loses its newline too: the file keeps its ending."""
    view = memoryview(data)
    parts, position = [], 0
    for start in starts:
        parts.append(view[position:start])
        end = data.find(b"\n", start)
        position = end + 1 if end >= 0 else len(data)
    parts.append(view[position:])
    if starts and not data.endswith(b"\n") and data.find(b"\n", starts[-1]) < 0:
        last = max((i for i, part in enumerate(parts) if len(part)), default=None)
        if last is not None:
            parts[last] = parts[last][:-1]
    return parts


def has_content(parts: list[memoryview]) -> bool:
    """Whether any line of `parts` holds more than whitespace."""
    return any(_NON_SPACE.search(part) for part in parts)


def blank_ranges(data: bytes | mmap.mmap, starts: np.ndarray, drop: list[int],
                 max_line_bytes: int | None) -> list[tuple[int, int]] | None:
    """The byte ranges of `data` to overwrite with spaces so that its lines `drop` (sorted line numbers;
    `starts`: where every line of the file begins, in line order) are gone and every other line keeps its bytes
    and offset: a dropped line after the first kept one becomes trailing whitespace of the line before it (the
    newline between them included), dropped lines before it leading whitespace of that line. JSON allows
    whitespace around a value, so each kept line parses as before and no blank line is left (a reader
    quarantines those). None when the file must be rewritten instead: no line would be kept, a line would grow
    beyond `max_line_bytes` (its reader would quarantine it), or the bytes are not laid out as `starts` says."""
    dropped = np.zeros(len(starts), bool)
    dropped[drop] = True
    kept = np.flatnonzero(~dropped)
    if not len(kept):
        return None
    first = int(kept[0])
    ranges: list[tuple[int, int]] = []
    for number in drop:
        start = int(starts[number])
        end = data.find(b"\n", start)
        end = len(data) if end < 0 else end
        if number < first:
            begin, stop = start, end + 1
        elif start > 0 and data[start - 1:start] == b"\n":
            begin, stop = start - 1, end
        else:
            return None
        if ranges and ranges[-1][1] >= begin:
            ranges[-1] = (ranges[-1][0], max(stop, ranges[-1][1]))
        else:
            ranges.append((begin, stop))
    if max_line_bytes is not None:
        for begin, stop in ranges:
            joined = first if begin == 0 else _line_of(starts, begin)  # the kept line the range joins
            line_start = 0 if joined == first else int(starts[joined])
            end = data.find(b"\n", stop if begin > 0 else int(starts[first]))
            if (len(data) if end < 0 else end) - line_start > max_line_bytes:
                return None
    return ranges


def _line_of(starts: np.ndarray, offset: int) -> int:
    """The number of the line holding byte `offset`."""
    return int(np.searchsorted(starts, offset, "right")) - 1


def blank(path: str, ranges: list[tuple[int, int]]) -> None:
    """Overwrite `ranges` of the local file `path` with spaces, in place (same inode, mode and size), and
    flush them to disk. A run killed midway leaves some lines blanked and the rest whole: its rerun finds the
    rest (the file's index no longer matches it, so the file is read whole)."""
    fd = os.open(path, os.O_WRONLY | os.O_NOFOLLOW)
    try:
        for begin, stop in ranges:
            os.pwrite(fd, b" " * (stop - begin), begin)
        os.fsync(fd)
    finally:
        os.close(fd)


def write_parts(parts: list[memoryview], compression: str | None) -> Callable[[str], None]:
    """A writer for `replace_file`: `parts` one after the other, compressed like the file they came from."""
    def write(path: str) -> None:
        with fsspec.open(path, "wb", compression=compression) as handle:
            for part in parts:
                handle.write(part)
    return write
