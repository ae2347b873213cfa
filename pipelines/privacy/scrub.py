"""Erasure in landing zones: rewrite landed raw files without the lines of the people being erased.

Landed files are plaintext copies of what trackers sent; after a load they stay for replays and audits,
so an erasure that stopped at the warehouse would leave the person readable on disk. Lines are matched the
same way rows are: the subject fields of each line (read with a regular expression, so broken JSON lines
are caught too) are blind-indexed per distinct value and compared with the erased identities. Files without
a match are not touched; matched files are rewritten through a temporary file and an atomic replace, with
their compression kept. Works on any fsspec URL.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import duckdb
import fsspec
import pyarrow as pa

from pipelines.catalog import LandingZone
from pipelines.privacy.protect import blind_index_by_kind
from pipelines.sql import loose_json_field
from pipelines.workspaces import UNATTRIBUTED_WORKSPACE


@dataclass
class ScrubReport:
    files_scanned: int = 0
    files_rewritten: int = 0
    lines_removed: int = 0


def scrub_landing(zone: LandingZone, url: str, identities: pa.Table, cipher,
                  whole_workspaces: frozenset[str] = frozenset()) -> ScrubReport:
    """Remove from every file of `zone` under `url` the lines whose subject fields blind-index to one of
    `identities` (columns workspace_id, bidx), and every line of `whole_workspaces` (offboarding)."""
    report = ScrubReport()
    fs, root = fsspec.core.url_to_fs(url)
    workspaces = set(identities.column("workspace_id").to_pylist()) | whole_workspaces
    if not workspaces:
        return report
    whole = pa.table({"workspace_id": pa.array(sorted(whole_workspaces), pa.string())})  # noqa: F841 - DuckDB scan
    con = duckdb.connect()
    con.register("identities", identities)
    con.execute("CREATE TEMP TABLE checked (ws VARCHAR, which INTEGER, v VARCHAR); "
                "CREATE TEMP TABLE erased (ws VARCHAR, which INTEGER, v VARCHAR)")
    fields = ", ".join(f"{loose_json_field('text', f)} AS {f}" for f in zone.subject_fields)
    workspace = loose_json_field("text", zone.workspace_field)
    for path in sorted(fs.glob(f"{root.rstrip('/')}/{zone.glob}")):
        report.files_scanned += 1
        with fs.open(path, "rb", compression="infer") as handle:
            lines = handle.read().split(b"\n")
        batch = pa.table({"line_no": pa.array(range(len(lines)), pa.int64()), "raw": pa.array(lines, pa.binary())})
        con.register("batch", batch)
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE fields AS SELECT line_no, ws, {', '.join(zone.subject_fields)} FROM ("
            f"SELECT line_no, text, CASE WHEN regexp_matches({workspace}, ?) THEN {workspace} "
            f"ELSE '{UNATTRIBUTED_WORKSPACE}' END AS ws, {fields} "
            "FROM (SELECT line_no, try(decode(raw)) AS text FROM batch)) "
            "WHERE ws IN (SELECT workspace_id FROM identities UNION SELECT workspace_id FROM whole)",
            [zone.workspace_pattern],
        )
        # Each distinct value is hashed once per scrub, however many files repeat it.
        con.execute(
            "CREATE OR REPLACE TEMP TABLE fresh AS "
            + " UNION ".join(f"SELECT ws, {i} AS which, {f} AS v FROM fields WHERE {f} IS NOT NULL "
                             "AND ws IN (SELECT workspace_id FROM identities)"  # an offboarded workspace has no key
                             for i, f in enumerate(zone.subject_fields, 1))
            + " EXCEPT SELECT ws, which, v FROM checked"
        )
        fresh = con.sql("SELECT * FROM fresh").to_arrow_table()
        if fresh.num_rows:
            hashed = fresh.append_column(  # noqa: F841 - read by DuckDB's replacement scan
                "bidx", blind_index_by_kind(cipher, fresh.column("ws"), fresh.column("which"), fresh.column("v"),
                                            list(zone.subject_kinds)))
            con.execute("INSERT INTO checked SELECT ws, which, v FROM fresh")
            con.execute("INSERT INTO erased SELECT h.ws, h.which, h.v FROM hashed h "
                        "SEMI JOIN identities i ON i.workspace_id = h.ws AND i.bidx = h.bidx")
        drop = {row[0] for row in con.execute(
            "SELECT line_no FROM fields WHERE ws IN (SELECT workspace_id FROM whole) UNION " + " UNION ".join(f"SELECT f.line_no FROM fields f JOIN erased e ON e.ws = f.ws AND e.which = {i} "
                           f"AND e.v = f.{x}" for i, x in enumerate(zone.subject_fields, 1))
        ).fetchall()}
        if not drop:
            continue
        kept = b"\n".join(line for i, line in enumerate(lines) if i not in drop)
        temporary = f"{path.rsplit('/', 1)[0]}/.scrub-{uuid.uuid4().hex}.tmp"  # never matches the zone's glob
        with fs.open(temporary, "wb", compression=_compression(path)) as handle:
            handle.write(kept)
        fs.mv(temporary, path)
        report.files_rewritten += 1
        report.lines_removed += len(drop)
    con.close()
    return report


def _compression(path: str) -> str | None:
    """The compression of `path` by its name (the temporary name hides the suffix from fsspec's infer)."""
    return fsspec.utils.infer_compression(path)
