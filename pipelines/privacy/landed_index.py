"""Which landed file holds whom: for each landed file still in the clear, its lines grouped by workspace with
the blind indexes of the identifiers those lines carry, written once the file is loaded.

Why: an erasure must remove the person's lines from every file still in the clear (the replay window of
`pipelines.privacy.landed_lifecycle`). Without an index that means reading every line of every such file and
parsing those of the person's workspace, which on a day of 700,000 lines costs seconds for one person. With
it an erasure opens only the files whose index names one of the erased identities, and parses only the lines
of the workspaces concerned; the rewrite itself is still checked against the lines as they are (the scrub
parses and hashes them), so an index can only make the scrub read more than it needs, never less.

The index of `<landing>/<path>` is `<landing>.index/<path>.index.arrow` (Arrow IPC: an erasure rewrites
the index of every file it rewrites, and this format writes and reads at memory speed): one row per workspace of the file
(as `pipelines.privacy.landed` reads a line's workspace, `_unattributed` included) with its line numbers, the
byte offsets where those lines begin (the scrub reads just them, never splitting the whole file) and the distinct blind indexes of its lines' subject fields, each under its field's kind, exactly as erasure
computes them. No plaintext is stored. The file's size and modification time when it was read are kept
beside: an index whose file changed since (landed again, rewritten by something else) is not used, and the
file is scanned in full as if it had none. The scrub keeps the index of a file it rewrites current; the sweep
removes it with the file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import duckdb
import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipelines.catalog import LandingZone
from pipelines.privacy.landed import (
    ZoneFiles, line_fields_sql, line_starts, lines_table, read_bytes, replace_file, scratch_dir, split_lines,
    subject_forms, zone_files, zone_lock,
)
from pipelines.privacy.protect import blind_index_by_kind

INDEX_SUFFIX = ".index.arrow"
_SCHEMA = pa.schema([("ws", pa.string()), ("line_nos", pa.list_(pa.int64())), ("starts", pa.list_(pa.int64())),
                     ("bidxs", pa.list_(pa.binary()))])  # bidxs null: not hashed (no workspace key), always read


def index_url(landing_url: str) -> str:
    """Where a landing zone's index lives: beside the landing location, outside the trackers' glob."""
    return landing_url.rstrip("/") + ".index"


@dataclass
class IndexReport:
    files_indexed: int = 0
    files_current: int = 0  # already indexed as they are


def index_landing(zone: LandingZone, url: str, cipher, work_dir: Path | None = None) -> IndexReport:
    """Index every file of `zone` under `url` that has no current index (run after each load: the files a load
    read are the ones without one)."""
    files = zone_files(zone, url)
    report = IndexReport()
    known: dict[str, bool] = {}
    with zone_lock(files, scratch_dir(zone, work_dir)):
        for path in files.paths:
            if read_index(files, url, path, rows=False) is not None:
                report.files_current += 1
                continue
            write_index(files, url, path, _build(zone, files, path, cipher, known), stamp(files, path),
                        scratch_dir(zone, work_dir))
            report.files_indexed += 1
    return report


def stamp(files: ZoneFiles, path: str) -> str | None:
    """What identifies the version of a file an index describes (size and modification time), or None where
    the file system gives no modification time (an index is then never trusted)."""
    if files.local:
        st = os.stat(path)
        return f"{st.st_size}:{st.st_mtime_ns}"
    info = files.fs.info(path)
    modified = info.get("mtime") or info.get("LastModified") or info.get("ETag")
    return f"{info.get('size')}:{modified}" if modified else None


def read_index(files: ZoneFiles, url: str, path: str, *, rows: bool = True) -> pa.Table | None:
    """The index of `path` if there is one describing the file as it is now, else None (`rows=False`: only
    whether there is one, its rows left unread)."""
    now = stamp(files, path)
    target = _index_path(files, url, path)
    if now is None or not files.fs.exists(target):
        return None
    with files.fs.open(target, "rb") as handle:
        reader = pa.ipc.open_file(handle)
        if (reader.schema.metadata or {}).get(b"stamp", b"").decode() != now:
            return None
        return reader.read_all() if rows else reader.schema.empty_table()


def write_index(files: ZoneFiles, url: str, path: str, table: pa.Table, file_stamp: str | None,
                scratch: Path) -> None:
    """Store `table` as the index of `path` in its version `file_stamp` (nothing is stored without one)."""
    if file_stamp is None:
        return
    table = table.cast(_SCHEMA).replace_schema_metadata({"stamp": file_stamp})

    def write(local: str) -> None:
        with pa.OSFile(local, "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
            writer.write_table(table)
    replace_file(files, _index_path(files, url, path), scratch, write, mode=0o600)


def remove_index(files: ZoneFiles, url: str, path: str) -> None:
    target = _index_path(files, url, path)
    if files.fs.exists(target):
        files.fs.rm_file(target)


def after_removal(index: pa.Table, dropped: list[int], dropped_starts: list[int], dropped_bytes: list[int],
                  erased: set[tuple[str, bytes]]) -> pa.Table:
    """The index of a file once its lines `dropped` (sorted line numbers, beginning at `dropped_starts` and
    `dropped_bytes` long with their newline; 0 when they were blanked in place) were cut out: later lines move
    up, and the erased identities (workspace, blind index) are no longer named."""
    numbers = index.column("line_nos").combine_chunks()
    counts = pc.list_value_length(numbers).to_numpy(zero_copy_only=False)
    row_of = np.repeat(np.arange(len(counts)), counts)
    flat = numbers.flatten().to_numpy()
    starts = index.column("starts").combine_chunks().flatten().to_numpy()
    gone = np.asarray(dropped, np.int64)
    keep = ~np.isin(flat, gone)
    cut_before = np.concatenate([[0], np.cumsum(np.asarray(dropped_bytes, np.int64))])
    new_numbers = flat[keep] - np.searchsorted(gone, flat[keep])
    new_starts = starts[keep] - cut_before[np.searchsorted(np.asarray(dropped_starts, np.int64), starts[keep])]
    new_starts[new_numbers == 0] = 0  # lines blanked in place before the first kept one are now its leading spaces
    new_counts = np.bincount(row_of[keep], minlength=len(counts))
    offsets = pa.array(np.concatenate([[0], np.cumsum(new_counts)]), pa.int32())
    erased_ws = {ws for ws, _ in erased}
    bidxs = [refs if refs is None or ws not in erased_ws else [b for b in refs if (ws, b) not in erased]
             for ws, refs in zip(index.column("ws").to_pylist(), index.column("bidxs").to_pylist())]
    table = pa.table({
        "ws": index.column("ws"),
        "line_nos": pa.ListArray.from_arrays(offsets, pa.array(new_numbers, pa.int64())),
        "starts": pa.ListArray.from_arrays(offsets, pa.array(new_starts, pa.int64())),
        "bidxs": pa.array(bidxs, pa.list_(pa.binary())),
    })
    return table.filter(pa.array(new_counts > 0))


def _index_path(files: ZoneFiles, url: str, path: str) -> str:
    fs, root = fsspec.core.url_to_fs(index_url(url))
    return f"{root.rstrip('/')}/{path[len(files.root.rstrip('/')) + 1:]}{INDEX_SUFFIX}"


def _build(zone: LandingZone, files: ZoneFiles, path: str, cipher, known: dict[str, bool]) -> pa.Table:
    """The index rows of one file: its lines read exactly as the scrub reads them."""
    lines = split_lines(read_bytes(files, path))
    batch = lines_table(lines)  # noqa: F841 - read by DuckDB's replacement scan
    positions = pa.table({"line_no": pa.array(np.arange(len(lines)), pa.int64()),  # noqa: F841 - DuckDB scan
                          "start": pa.array(line_starts(lines), pa.int64())})
    values = " UNION ALL ".join(f"SELECT ws, {i} AS which, unnest({f}) AS v FROM per_line"
                                for i, f in enumerate(zone.subject_fields, 1))
    with duckdb.connect() as con:
        con.execute(f"CREATE TEMP TABLE per_line AS {line_fields_sql(zone, 'batch')}")
        grouped = con.sql("SELECT ws, list(line_no ORDER BY line_no) AS line_nos, list(start ORDER BY line_no) AS starts "
                          "FROM per_line JOIN positions USING (line_no) GROUP BY ws").to_arrow_table()
        con.execute(f"CREATE TEMP TABLE found AS SELECT DISTINCT ws, which, v FROM ({values}) "
                    "WHERE v IS NOT NULL AND v <> ''")
        for ws in set(grouped.column("ws").to_pylist()) - known.keys():
            known[ws] = cipher.has_workspace(ws)
        unkeyed = pa.table({"ws": pa.array([w for w, has in known.items() if not has], pa.string())})  # noqa: F841
        hashable = con.sql("SELECT * FROM found ANTI JOIN unkeyed USING (ws)").to_arrow_table()
        hashed = hashable.append_column(  # noqa: F841 - read by DuckDB's replacement scan
            "bidx", blind_index_by_kind(cipher, hashable.column("ws"), hashable.column("which"),
                                        subject_forms(zone, hashable.column("which"), hashable.column("v")),
                                        list(zone.subject_kinds)))
        return con.sql(
            "SELECT l.ws, l.line_nos, l.starts, CASE WHEN l.ws IN (SELECT ws FROM unkeyed) THEN NULL "
            "ELSE coalesce(b.bidxs, []) END AS bidxs FROM grouped l LEFT JOIN "
            "(SELECT ws, list(DISTINCT bidx ORDER BY bidx) AS bidxs FROM hashed GROUP BY ws) b USING (ws) ORDER BY l.ws"
        ).to_arrow_table()
