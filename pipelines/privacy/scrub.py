"""Erasure in landing zones: rewrite the landed files still kept in the clear without the lines of the
people being erased.

Landed files are plaintext copies of what trackers sent. They stay in the clear only for the replay window
of the retention policy (`pipelines.privacy.landed_lifecycle`); older ones live in an encrypted archive
that erasure reaches by destroying keys, so the scrub reads only the few days still in the clear. Lines are
matched the way rows are: each line's subject fields (read as `pipelines.privacy.landed` reads them: JSON
top-level fields, any encoding) are blind-indexed per distinct value and compared with the erased
identities. Files without a match are not touched; a matched file is rewritten (compression and mode kept)
or removed when nothing would be left.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb
import fsspec
import pyarrow as pa

from pipelines.catalog import LandingZone
from pipelines.sql import literal
from pipelines.privacy.landed import (
    lines_table, line_fields_sql, read_bytes, replace_file, scratch_dir, split_lines, write_lines, zone_files,
    zone_lock,
)


@dataclass
class ScrubReport:
    files_scanned: int = 0
    files_rewritten: int = 0
    files_removed: int = 0  # every line of the file was erased: removed rather than left empty
    lines_removed: int = 0
    links_outside_root: int = 0  # symlinks leading out of the landing root: neither read nor replaced


def scrub_landing(zone: LandingZone, url: str, identities: pa.Table, cipher,
                  work_dir: Path | None = None) -> ScrubReport:
    """Remove from every file of `zone` under `url` the lines whose subject fields blind-index to one of
    `identities` (columns workspace_id, bidx). Scratch copies go to the work folder (`work_dir`, default
    `pipelines.paths.work_dir()`)."""
    report = ScrubReport()
    if identities.num_rows == 0:
        return report
    files = zone_files(zone, url)
    report.links_outside_root = files.links_outside
    scratch = scratch_dir(zone, work_dir)
    con = duckdb.connect()
    con.register("identities", identities)
    con.execute("CREATE TEMP TABLE checked (ws VARCHAR, v VARCHAR); CREATE TEMP TABLE erased (ws VARCHAR, v VARCHAR)")
    values = " UNION ALL ".join(f"SELECT line_no, ws, unnest({f}) AS v FROM per_line" for f in zone.subject_fields)
    with zone_lock(files, scratch):
        # A sweep that read a file before the erasure destroyed these keys may have archived the person's lines
        # under keys it created afresh; it held the zone lock until done, so destroying them again now makes
        # such lines unreadable too.
        cipher.destroy_subjects_many(identities.column("workspace_id"), identities.column("bidx"))
        for path in files.paths:
            report.files_scanned += 1
            data = read_bytes(files, path)
            lines = split_lines(data)
            batch = lines_table(lines)  # noqa: F841 - read by DuckDB's replacement scan
            con.execute(
                f"CREATE OR REPLACE TEMP TABLE found AS WITH candidates AS ({_candidates_sql(zone)}), "
                f"per_line AS ({line_fields_sql(zone, 'candidates')}) "
                f"SELECT DISTINCT * FROM ({values}) WHERE v IS NOT NULL AND v <> '' "
                "AND ws IN (SELECT workspace_id FROM identities)"
            )
            # Each distinct value is hashed once per scrub, however many files repeat it.
            fresh = con.sql("SELECT DISTINCT ws, v FROM found EXCEPT SELECT ws, v FROM checked").to_arrow_table()
            if fresh.num_rows:
                hashed = fresh.append_column(  # noqa: F841 - read by DuckDB's replacement scan
                    "bidx", cipher.blind_index_many(fresh.column("ws"), fresh.column("v")))
                con.execute("INSERT INTO checked SELECT ws, v FROM fresh")
                con.execute("INSERT INTO erased SELECT h.ws, h.v FROM hashed h "
                            "SEMI JOIN identities i ON i.workspace_id = h.ws AND i.bidx = h.bidx")
            drop = {row[0] for row in con.execute(
                "SELECT DISTINCT f.line_no FROM found f SEMI JOIN erased e ON e.ws = f.ws AND e.v = f.v").fetchall()}
            if not drop:
                continue
            kept = [line for i, line in enumerate(lines.to_pylist()) if i not in drop]
            report.lines_removed += len(drop)
            if not any(line.strip() for line in kept):
                files.fs.rm_file(path)
                report.files_removed += 1
                continue
            replace_file(files, path, scratch,
                         write_lines(kept, fsspec.utils.infer_compression(path), data.endswith(b"\n")))
            report.files_rewritten += 1
    con.close()
    return report


def _candidates_sql(zone: LandingZone) -> str:
    """The lines of `batch` that may belong to a workspace of `identities` (`_unattributed` included), found
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
        f"OR {value} = '' OR {value} IN (SELECT workspace_id FROM identities)"
    )
