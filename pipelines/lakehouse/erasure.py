"""Erasure on the lakehouse: destroy the people's keys, then rewrite only the Parquet files holding their rows.

Parquet files are immutable, so a row is removed by writing its file again without it. The rows are found by
the declared subject reference (`x-subject-ref`, a blind index: no decryption), file by file through DuckDB's
`filename` column, so a file that holds none of them is never touched, and a day partition without them keeps
its files byte for byte. Each file is replaced as the privacy engine's other lake writes replace theirs
(`working_copy.replace_file`: a hidden file, one atomic rename; a file left with no row is deleted, a table's
last file stays empty). The old bytes are gone from the
lake folder once the rename is done (a production bucket with object versioning keeps old versions: expire
them, or rely on the destroyed keys, as a Delta/Iceberg VACUUM would).

The caller holds the warehouse lock for writing, as every writer does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from pipelines.lakehouse import storage
from pipelines.lakehouse.working_copy import replace_file
from pipelines.sql import ident, literal


@dataclass
class ErasureReport:
    """Counts and lake-relative file paths only (never a value)."""

    keys_destroyed: int = 0
    rows_removed: int = 0
    files_rewritten: list[str] = field(default_factory=list)
    files_deleted: list[str] = field(default_factory=list)


def subject_column(columns: dict[str, Any]) -> str | None:
    """The table's declared subject reference column, if it has one."""
    return next((name for name, c in columns.items() if c.get("x-subject-ref")), None)


def erase_subjects(warehouse_path: str | Path, cipher, people: list[tuple[str, bytes]],
                   tables: dict[str, dict[str, Any]]) -> ErasureReport:
    """Erase `people` (workspace id, subject reference) from every lake table of `tables` with a subject column:
    their keys first (their ciphertext is unreadable from then on, wherever a copy survives), then their rows."""
    report = ErasureReport()
    if not people:
        return report
    report.keys_destroyed = cipher.destroy_subjects_many([w for w, _ in people], [r for _, r in people])
    lake = storage.lake_root(warehouse_path)
    doomed = pa.table({"workspace_id": pa.array([w for w, _ in people], pa.string()),
                       "subject": pa.array([r for _, r in people], pa.binary())})
    loaded = storage.table_dirs(lake)
    with duckdb.connect() as con:
        con.execute("SET TimeZone = 'UTC'")
        con.register("doomed", doomed)
        for table, columns in tables.items():
            column = subject_column(columns)
            if column is None or table not in loaded:
                continue
            match = (f"EXISTS (SELECT 1 FROM doomed d WHERE d.workspace_id = t.workspace_id "
                     f"AND d.subject = t.{ident(column)})")
            affected = con.execute(
                f"SELECT filename, count(*) FROM {storage.scan_sql(loaded[table], with_filename=True)} t "
                f"WHERE {match} GROUP BY filename ORDER BY filename").fetchall()
            for filename, rows in affected:
                _rewrite(con, Path(filename), match, loaded[table], lake, report)
                report.rows_removed += rows
    return report


def _rewrite(con: duckdb.DuckDBPyConnection, path: Path, match: str, table_dir: Path, lake: Path,
             report: ErasureReport) -> None:
    """`path` again without the matching rows (its own schema kept); deleted if none is left."""
    kept = replace_file(con, path, f"SELECT * FROM read_parquet({literal(str(path))}, hive_partitioning = false) t "
                        f"WHERE NOT {match}", table_dir)
    (report.files_rewritten if kept else report.files_deleted).append(str(path.relative_to(lake)))
