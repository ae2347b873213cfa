"""Where the lakehouse keeps its tables, how dlt writes them, and the DuckDB catalog that reads them.

dlt's `filesystem` destination writes each table as Parquet files under `<lake>/<dataset>/<table>/day=YYYY-MM-DD/`
(Hive-style day partitions: the day of the Dagster partition being loaded, else the load's day). Job files are
named `<load id>.<file id>.parquet`, so a job replayed after a crash overwrites its own file instead of adding
a second copy: the filesystem needs no deduplication after recovery.

Readers that speak DuckDB (a source's exactly-once ledger, its duplicate check, the asset checks) keep working
unchanged: the warehouse file becomes a catalog of views, one per table folder, each reading that folder's
Parquet files (`refresh_catalog`). The SQL models Spark builds are table folders too (`<lake>/<schema>/<model>/`),
so their checks and the analysts' snapshot read them through the same catalog; their partition folders
(`session_date=...`) are columns, whereas dlt's `day=` folders are storage only. The views glob the folder at query time, so files loaded since the last
refresh are seen; only a table's first files need a refresh, which every pipeline and connection does first.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import dlt
import duckdb
import pendulum

from pipelines.sql import ident, literal

LAKEHOUSE_URL_ENV = "GTG_LAKEHOUSE_URL"
LAYOUT = "{table_name}/day={YYYY}-{MM}-{DD}/{load_id}.{file_id}.{ext}"
PARTITION = "day"


def lake_root(warehouse_path: str | Path) -> Path:
    """GTG_LAKEHOUSE_URL, default the `lakehouse` folder beside the warehouse (catalog) file.

    A local folder here; production points dlt at a bucket URL and Spark at the same bucket (the DuckDB catalog
    then needs DuckDB's httpfs extension, which this machine cannot download)."""
    return Path(os.environ.get(LAKEHOUSE_URL_ENV) or Path(warehouse_path).parent / "lakehouse")


def destination(warehouse_path: str | Path, day: dt.date | None = None) -> dlt.destinations.filesystem:
    """dlt's filesystem destination writing Parquet into the lake, files of this load under `day=<day>`."""
    when = pendulum.datetime(day.year, day.month, day.day, tz="UTC") if day else None
    return dlt.destinations.filesystem(
        bucket_url=lake_root(warehouse_path).resolve().as_uri(),
        layout=LAYOUT,
        current_datetime=when,
        preferred_loader_file_format="parquet",
    )


def table_dirs(root: Path) -> dict[str, Path]:
    """`dataset.table` → folder, for every table folder of the lake holding at least one Parquet file, and dlt's
    own tables (`_dlt_version`, `_dlt_loads`: JSON lines), which say what each table declares and when loads
    completed."""
    found: dict[str, Path] = {}
    if not root.is_dir():
        return found
    for dataset in sorted(p for p in root.iterdir() if p.is_dir()):
        for table in sorted(p for p in dataset.iterdir() if p.is_dir()):
            if next(table.rglob("*.parquet"), None) is not None or _json_lines(table):
                found[f"{dataset.name}.{table.name}"] = table
    return found


def _json_lines(table_dir: Path) -> bool:
    """Whether the folder is one of dlt's own tables, which the filesystem destination writes as JSON lines."""
    return table_dir.name.startswith("_dlt") and next(table_dir.glob("*.jsonl"), None) is not None


def files(table_dir: Path) -> list[Path]:
    """The Parquet files of one table folder (every day partition)."""
    return sorted(table_dir.rglob("*.parquet"))


def partition_columns(table_dir: Path) -> bool:
    """Whether the folder's partition folders are columns: Spark's partitioned models (`session_date=...`), not
    dlt's storage-only `day=` folders."""
    return any(p.is_dir() and "=" in p.name and not p.name.startswith(f"{PARTITION}=") for p in table_dir.iterdir())


def scan_sql(table_dir: Path, with_filename: bool = False) -> str:
    """DuckDB's read of one table folder: dlt's partition folder is storage, not a column (the DuckDB backend's
    table has no `day`), a model's partition folders are its key column, and files written before a column was
    added read it as NULL; `with_filename` adds each row's file as `filename`."""
    if _json_lines(table_dir):
        return f"read_json({literal(str(table_dir.resolve() / '*.jsonl'))}, format = 'newline_delimited')"
    pattern = literal(str(table_dir.resolve() / "**" / "*.parquet"))
    return (f"read_parquet({pattern}, hive_partitioning = {str(partition_columns(table_dir)).lower()}, "
            f"union_by_name = true{', filename = true' if with_filename else ''})")


def register(con: duckdb.DuckDBPyConnection, table: str, folder: Path) -> None:
    """The catalog's view of one lake table (`dataset.table`) reading `folder`."""
    dataset, name = table.split(".", 1)
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {ident(dataset)}; "
                f"CREATE OR REPLACE VIEW {ident(dataset)}.{ident(name)} AS SELECT * FROM {scan_sql(folder)}")


def refresh_catalog(warehouse_path: str | Path) -> list[str]:
    """(Re)create one view per lake table in the DuckDB catalog file `warehouse_path`; returns the tables.

    The caller holds the warehouse lock for writing (the catalog is a DuckDB file like the warehouse)."""
    tables = table_dirs(lake_root(warehouse_path))
    Path(warehouse_path).parent.mkdir(parents=True, exist_ok=True)
    with duckdb.connect(str(warehouse_path)) as con:
        for table, folder in tables.items():
            register(con, table, folder)
    return list(tables)
