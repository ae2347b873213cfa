"""Erasure in landing zones: rewrite the landed files still kept in the clear without the lines of the
people being erased.

Landed files are plaintext copies of what trackers sent. They stay in the clear only for the replay window
of the retention policy (`pipelines.privacy.landed_lifecycle`); older ones live in an encrypted archive
that erasure reaches by destroying keys, so the scrub reads only the few days still in the clear. Lines are
matched the way rows are: each line's subject fields (read as `pipelines.privacy.landed` reads them: JSON
top-level fields, any encoding) are blind-indexed per distinct value, each under the identifier kind of its
field, and compared with the erased identities; offboarding drops every line of the workspace unhashed. Files without a match are not touched; a matched file is rewritten (compression and mode kept)
or removed when nothing would be left.

A file with a current index (`pipelines.privacy.landed_index`, written at load) is read only when its index
names one of the identities, and then only the lines of the workspaces where it does are parsed; a file
without one is scanned whole. A plain local file with a current index loses its erased lines in place
(`pipelines.privacy.landed.blank_ranges`: overwritten with spaces that join a neighbouring line as JSON
whitespace), so an erasure writes the pages of the person's lines rather than the whole file: the files of
a day each hold every workspace's lines, and rewriting them cost most of a late-day erasure. Other files
(compressed, without an index) are rewritten: the kept bytes copied as they are, the erased lines cut out.
"""

from __future__ import annotations

import mmap
from dataclasses import dataclass
from pathlib import Path

import duckdb
import fsspec
import numpy as np
import pyarrow as pa

from pipelines.catalog import LandingZone
from pipelines.privacy.landed import (
    ZoneFiles, blank, blank_ranges, has_content, line_at, line_starts, lines_table, line_fields_sql, map_plain,
    read_bytes, replace_file, scratch_dir, split_lines, subject_forms, without_lines, write_parts, zone_files,
    zone_lock,
)
from pipelines.privacy.landed_index import after_removal, read_index, remove_index, stamp, write_index
from pipelines.privacy.protect import blind_index_by_kind
from pipelines.sql import literal


@dataclass
class ScrubReport:
    files_scanned: int = 0
    files_read: int = 0  # files whose bytes were read: those without a current index, or whose index names someone
    files_rewritten: int = 0
    files_removed: int = 0  # every line of the file was erased: removed rather than left empty
    lines_removed: int = 0
    links_outside_root: int = 0  # symlinks leading out of the landing root: neither read nor replaced
    keys_destroyed: int = 0  # subject keys of `identities` that still existed when the zone was locked


# Files are read in groups of about this many bytes (decompressed): their candidate lines are matched in one
# pass of queries, not one per file, and no more than a group is held in memory at once.
GROUP_BYTES = 256 * 1024 * 1024
# A candidate line's key in the group's tables: its file's place in the group, then its line number.
_FILE_SHIFT = 40


@dataclass
class _Read:
    """A file read for the scrub: its bytes (mapped: a plain local file with an index, changed in place), its
    index (None: scanned whole), where its lines begin and how many bytes were read into memory."""

    path: str
    data: bytes | mmap.mmap
    index: pa.Table | None
    starts: dict[int, int] | np.ndarray
    held: int


def scrub_landing(zone: LandingZone, url: str, identities: pa.Table, cipher,
                  whole_workspaces: frozenset[str] = frozenset(), work_dir: Path | None = None) -> ScrubReport:
    """Remove from every file of `zone` under `url` the lines whose subject fields blind-index to one of
    `identities` (columns workspace_id, bidx), each field under its own identifier kind, and every line of
    `whole_workspaces` (offboarding: never hashed, their key is gone and hashing would create it again).
    The subject keys of `identities` (and the keys of `whole_workspaces`) are destroyed first, once the zone
    is locked, so the scrub may be an erasure's only key destruction. Scratch copies go to the work folder
    (`work_dir`, default `pipelines.paths.work_dir()`)."""
    report = ScrubReport()
    if identities.num_rows == 0 and not whole_workspaces:
        return report
    files = zone_files(zone, url)
    report.links_outside_root = files.links_outside
    scratch = scratch_dir(zone, work_dir)
    with zone_lock(files, scratch):
        # Under the lock: a sweep that read a file before (an erasure that destroyed these keys earlier, an
        # offboarding) may have archived the person's or the workspace's lines under keys it created afresh,
        # and it held the lock until done, so these go too; a sweep after the scrub finds none of their lines.
        report.keys_destroyed = cipher.destroy_subjects_many(identities.column("workspace_id"),
                                                             identities.column("bidx"))
        for workspace_id in sorted(whole_workspaces):
            cipher.destroy_workspace(workspace_id)
        if files.paths:  # with none in the clear (all archived) the keys were all there was to do
            _scrub_files(zone, url, files, scratch, identities, whole_workspaces, cipher, report)
    return report


def _scrub_files(zone: LandingZone, url: str, files: ZoneFiles, scratch: Path, identities: pa.Table,
                 whole_workspaces: frozenset[str], cipher, report: ScrubReport) -> None:
    """The scrub of the zone's files in the clear, with the zone locked and the keys destroyed."""
    con = duckdb.connect()
    con.register("identities", identities)
    con.register("whole", pa.table({"workspace_id": pa.array(sorted(whole_workspaces), pa.string())}))
    con.execute("CREATE TEMP TABLE targets AS SELECT workspace_id FROM identities UNION SELECT workspace_id FROM whole")
    erased = set(zip(identities.column("workspace_id").to_pylist(), identities.column("bidx").to_pylist()))
    group: list[_Read] = []
    candidates: list[pa.Table] = []
    for path in files.paths:
        report.files_scanned += 1
        index = read_index(files, url, path)
        wanted = None if index is None else _indexed_lines(con, index)
        if wanted is not None and not wanted:
            continue  # the index names none of them: the file is not even read
        report.files_read += 1
        key = len(group) << _FILE_SHIFT
        if wanted is None:  # no current index: every line is a candidate until shown to be another's
            data = read_bytes(files, path)
            lines = split_lines(data)
            batch = lines_table(lines)  # noqa: F841 - read by DuckDB's replacement scan
            found = con.sql(f"SELECT line_no + {key} AS line_no, text FROM ({_candidates_sql(zone)})")
            candidates.append(found.to_arrow_table())
            group.append(_Read(path, data, None, line_starts(lines), len(data)))
        else:  # only the lines the index places in the workspaces concerned, read at their offsets
            mapped = map_plain(files, path)
            data = read_bytes(files, path) if mapped is None else mapped
            numbers, offsets = zip(*wanted)
            found_lines = pa.array([line_at(data, o) for o in offsets], pa.large_binary())
            candidates.append(lines_table(found_lines, [key + n for n in numbers]))
            group.append(_Read(path, data, index, dict(wanted),
                               len(data) if mapped is None else found_lines.nbytes))
        if sum(r.held for r in group) >= GROUP_BYTES:
            _scrub_group(zone, files, url, scratch, con, cipher, group, candidates, erased, report)
            group, candidates = [], []
    if group:
        _scrub_group(zone, files, url, scratch, con, cipher, group, candidates, erased, report)
    con.close()


def _scrub_group(zone: LandingZone, files: ZoneFiles, url: str, scratch: Path, con: duckdb.DuckDBPyConnection,
                 cipher, group: list[_Read], candidates: list[pa.Table], erased: set[tuple[str, bytes]],
                 report: ScrubReport) -> None:
    """Match the candidate lines of a group of files (each distinct value hashed once), then rewrite each file
    holding a match without its matched lines."""
    batch = pa.concat_tables([c.cast(candidates[0].schema) for c in candidates])  # noqa: F841 - DuckDB scan
    con.execute(f"CREATE OR REPLACE TEMP TABLE per_line AS {line_fields_sql(zone, 'batch')}")
    values = " UNION ALL ".join(f"SELECT line_no, ws, {i} AS which, unnest({f}) AS v FROM per_line"
                                for i, f in enumerate(zone.subject_fields, 1))
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE found AS SELECT DISTINCT * FROM ({values}) "
        "WHERE v IS NOT NULL AND v <> '' AND ws IN (SELECT workspace_id FROM identities) "
        "AND ws NOT IN (SELECT workspace_id FROM whole)"
    )
    fresh = con.sql("SELECT DISTINCT ws, which, v FROM found").to_arrow_table()
    hashed = fresh.append_column(  # noqa: F841 - read by DuckDB's replacement scan
        "bidx", blind_index_by_kind(cipher, fresh.column("ws"), fresh.column("which"),
                                    subject_forms(zone, fresh.column("which"), fresh.column("v")),
                                    list(zone.subject_kinds)))
    drops: dict[int, list[int]] = {}
    for (key,) in con.execute(
        "SELECT line_no FROM per_line WHERE ws IN (SELECT workspace_id FROM whole) UNION "
        "SELECT f.line_no FROM found f SEMI JOIN (SELECT h.ws, h.which, h.v FROM hashed h SEMI JOIN identities i "
        "ON i.workspace_id = h.ws AND i.bidx = h.bidx) e ON e.ws = f.ws AND e.which = f.which AND e.v = f.v "
        "ORDER BY 1"
    ).fetchall():
        drops.setdefault(key >> _FILE_SHIFT, []).append(key & ((1 << _FILE_SHIFT) - 1))
    for number, read in enumerate(group):
        try:
            if number in drops:
                _remove_lines(zone, files, url, scratch, read, drops[number], erased, report)
        finally:
            if isinstance(read.data, mmap.mmap):
                read.data.close()


def _remove_lines(zone: LandingZone, files: ZoneFiles, url: str, scratch: Path, read: _Read, drop: list[int],
                  erased: set[tuple[str, bytes]], report: ScrubReport) -> None:
    """Take the lines `drop` out of one file: in place when it is mapped and can be, else by rewriting it
    (or removing it when nothing would be left), keeping its index current."""
    report.lines_removed += len(drop)
    cut = [int(read.starts[n]) for n in drop]
    ranges = None
    if isinstance(read.data, mmap.mmap):
        every_start = _every_start(read.index)
        if _content_kept(read.data, every_start, drop):
            ranges = blank_ranges(read.data, every_start, drop, zone.max_line_bytes)
    if ranges is not None:
        blank(read.path, ranges)
        write_index(files, url, read.path, after_removal(read.index, drop, cut, [0] * len(drop), erased),
                    stamp(files, read.path), scratch)
        report.files_rewritten += 1
        return
    data = read.data[:] if isinstance(read.data, mmap.mmap) else read.data
    kept = without_lines(data, cut)
    if not has_content(kept):
        files.fs.rm_file(read.path)
        remove_index(files, url, read.path)
        report.files_removed += 1
        return
    replace_file(files, read.path, scratch, write_parts(kept, fsspec.utils.infer_compression(read.path)))
    if read.index is None:
        remove_index(files, url, read.path)  # an outdated one: it may name the people just erased
    else:
        lengths = [len(line_at(data, start)) + 1 for start in cut]
        write_index(files, url, read.path, after_removal(read.index, drop, cut, lengths, erased),
                    stamp(files, read.path), scratch)
    report.files_rewritten += 1


def _every_start(file_index: pa.Table) -> np.ndarray:
    """Where each line of an indexed file begins, in line order (the index lists every line once)."""
    numbers = file_index.column("line_nos").combine_chunks().flatten().to_numpy()
    starts = file_index.column("starts").combine_chunks().flatten().to_numpy()
    every = np.empty(len(numbers), np.int64)
    every[numbers] = starts
    return every


def _content_kept(data: mmap.mmap, every_start: np.ndarray, drop: list[int]) -> bool:
    """Whether a line other than `drop` holds more than whitespace (read until the first that does)."""
    dropped = set(drop)
    return any(has_content([memoryview(line_at(data, int(start)))])
               for number, start in enumerate(every_start) if number not in dropped)


def _candidates_sql(zone: LandingZone) -> str:
    """The lines of `batch` that may belong to a workspace of `targets` (`_unattributed` included), found
    with string operations before any JSON is parsed: in a week of files a person's workspace is one of
    about a thousand. A line is skipped only when it is plain enough to be sure of its workspace without
    parsing: no backslash (no escapes), the workspace key exactly once, written `"key":"value"` at the top
    level (nothing but one `{` and bracket-free text before it), and that value a valid workspace id that was
    not asked for. Anything unusual is parsed."""
    key = f'"{zone.workspace_field}"'
    valid = zone.workspace_pattern.removeprefix("^").removesuffix("$")
    value = f"regexp_extract(text, {literal(key + ':' + chr(34) + '(' + valid + ')' + chr(34))}, 1)"
    return (
        f"SELECT line_no, text FROM (SELECT *, strpos(text, {literal(key + ':' + chr(34))}) AS pos FROM batch) "
        f"WHERE pos = 0 OR contains(text, '\\') "
        f"OR length(text) - length(replace(text, {literal(key)}, '')) <> {len(key)} "
        f"OR NOT regexp_matches(left(text, pos - 1), '^\\s*\\{{[^{{}}\\[\\]]*$') "
        f"OR {value} = '' OR {value} IN (SELECT workspace_id FROM targets)"
    )


def _indexed_lines(con: duckdb.DuckDBPyConnection, file_index: pa.Table) -> list[tuple[int, int]]:
    """(line number, byte offset) of the lines a file's index places in a workspace where one of `identities`
    is named (or that is erased whole, or whose identifiers were not hashed), in order: the only lines of the
    file to parse."""
    return [(row[0], row[1]) for row in con.execute(
        "SELECT DISTINCT unnest(line_nos) AS n, unnest(starts) AS s FROM file_index WHERE ws IN (SELECT workspace_id FROM whole) "
        "OR (bidxs IS NULL AND ws IN (SELECT workspace_id FROM identities)) OR ws IN ("
        "SELECT x.ws FROM (SELECT ws, unnest(bidxs) AS b FROM file_index) x "
        "JOIN identities i ON i.workspace_id = x.ws AND i.bidx = x.b) ORDER BY n"
    ).fetchall()]
