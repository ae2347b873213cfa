"""Contact lists users upload (CSV or Excel) into `raw_contact_uploads`: one row per workspace and person.

A run takes every complete file of `<landing>/<workspace>/`, reads it (`reader`: encoding, delimiter,
headers), normalises and validates it (`normalise`), protects the good rows (personal columns encrypted,
each contact under their own subject key, blind indexes added; erased people dropped) and keeps each
person once per workspace by blind index: within an upload its first row, across uploads the latest. Bad
rows go to `uploaded_contacts_quarantine` with file, row and reason; a file that cannot be read at all is
one quarantine row (row 0). Contacts, quarantine and the ledger row of every file go to the warehouse in one
dlt load, so an upload applies whole or not at all (a load cut short is finished by the next run before
anything new is read), and the ledger (path and SHA-256) makes it apply once. Once loaded, files are
deleted from the landing zone. Files of a workspace the platform does not know stay, for a later run.

`python -m pipelines.contact_uploads` runs it with plain dlt, no Dagster.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import dlt
import duckdb
import polars as pl
import pyarrow as pa

from pipelines.contact_uploads.normalise import REASON, normalised
from pipelines.contact_uploads.reader import ROW, UnreadableFile, read_upload
from pipelines.contact_uploads.settings import (
    CONTACT_COLUMNS, CONTACTS_TABLE, DATASET_NAME, LEDGER_COLUMNS, LEDGER_TABLE, NOT_TAKEN_SUFFIXES,
    QUARANTINE_COLUMNS, QUARANTINE_TABLE, SOURCE_NAME, SUFFIXES, TABLES,
)
from pipelines.errors import values_withheld
from pipelines.mail_common.stage import WorkDatabase
from pipelines.paths import escaped_name
from pipelines.phones import regions_of
from pipelines.privacy.protect import plain_schema, protect_table
from pipelines.sql import qualified
from pipelines.warehouse import finish_pending, table_exists, warehouse_lock, warehouse_pipeline

__all__ = ["DATASET_NAME", "SOURCE_NAME", "UploadReport", "contact_uploads_source", "load_uploads"]

# `deduplicated`: a run hands dlt one row per key of each table (contacts by `_deduplicate`, quarantine rows per
# file and row, ledger rows per file), so the merge skips its own ROW_NUMBER() pass over the staging table.
MERGE = {"disposition": "merge", "strategy": "delete-insert", "deduplicated": True}
BATCH_ROWS = 100_000
COUNTS = ("files_loaded", "files_rejected", "rows", "contacts_loaded", "duplicates_dropped", "rows_quarantined",
          "rows_suppressed")


@dataclass
class UploadReport:
    """What one run did (counts only; which files and rows were rejected is in the quarantine table)."""

    files_loaded: int = 0
    files_rejected: int = 0
    files_waiting: int = 0  # unknown workspace: left in place for a later run
    files_already_loaded: int = 0
    rows: int = 0
    contacts_loaded: int = 0
    duplicates_dropped: int = 0
    rows_quarantined: int = 0
    rows_suppressed: int = 0
    loaded_paths: list[Path] = field(default_factory=list)

    def as_metadata(self) -> dict[str, int]:
        return {k: v for k, v in vars(self).items() if isinstance(v, int)}


def landed_files(landing: Path) -> list[Path]:
    """Complete upload files under `<landing>/<workspace>/`, oldest first (then by name)."""
    if not landing.is_dir():
        return []
    found = [p for p in landing.glob("*/*") if p.is_file() and p.suffix.lower() in SUFFIXES
             and not p.name.startswith((".", "_")) and not p.name.endswith(NOT_TAKEN_SUFFIXES)]
    return sorted(found, key=lambda p: (p.stat().st_mtime, str(p)))


class UploadRun:
    """One run over the landing zone: reads, validates and protects every new file in `work` (a DuckDB work
    database), then hands dlt the three tables."""

    def __init__(self, landing: Path, cipher, work: WorkDatabase, *, known_workspaces: frozenset[str],
                 now: dt.datetime | None = None) -> None:
        self.landing, self.cipher, self.work = Path(landing), cipher, work
        self.known = known_workspaces
        self.now = now or dt.datetime.now(dt.timezone.utc)
        self.report = UploadReport()
        self._prepared: dict[str, list[dict]] | None = None
        self.regions: dict[str, str] = {}
        self._contacts = False

    def rows(self, table: str) -> Iterator[Any]:
        """The rows of one of the three tables (the files are read the first time any is asked for)."""
        if self._prepared is None:
            self._prepared = self._prepare()
        if table != CONTACTS_TABLE:
            rows = self._prepared[table]
            if rows:  # nullability as declared: dlt warns when an arrow table's hints differ from the declaration
                columns = TABLES[table]
                yield pa.Table.from_pylist(rows, schema=pa.schema(
                    [f.with_nullable(columns[f.name].get("nullable", True)) for f in plain_schema(columns)]))
            return
        if self._contacts:
            fields = [pa.field(n, t, CONTACT_COLUMNS[n].get("nullable", True)) for n, t in
                      zip(plain_schema(CONTACT_COLUMNS).names, self._stored_types())]
            reader = self.work.con.sql(f"SELECT {', '.join(CONTACT_COLUMNS)} FROM kept_contacts").to_arrow_reader(
                BATCH_ROWS)
            for batch in reader:
                yield pa.Table.from_batches([batch]).cast(pa.schema(fields))

    def _prepare(self) -> dict[str, list[dict]]:
        """Read, validate and protect every new file into the work database; the quarantine and ledger rows."""
        loaded = self._ledger()
        self.regions = regions_of(self.work.con)  # the app database's, which the work database loaded; read once
        quarantine: list[dict] = []
        ledger: list[dict] = []
        staged = False
        for order, path in enumerate(landed_files(self.landing)):
            named = path.relative_to(self.landing).as_posix()
            relative = escaped_name(named)  # the ledger and the quarantine hold text: the bytes escaped
            workspace = path.parent.name
            data = path.read_bytes()
            digest = hashlib.sha256(data).hexdigest()
            if (relative, digest) in loaded:  # loaded before; its deletion did not happen
                self.report.files_already_loaded += 1
                self.report.loaded_paths.append(path)
                continue
            if workspace not in self.known:
                self.report.files_waiting += 1
                continue
            entry = {"source_file": relative, "sha256": digest, "workspace_id": workspace, "size_bytes": len(data),
                     "encoding": None, "rows": 0, "contacts_loaded": 0, "duplicates_dropped": 0,
                     "rows_quarantined": 0, "status": "loaded", "received_at": self.now}
            self.report.loaded_paths.append(path)
            try:
                if relative != named:
                    raise UnreadableFile("undecodable_name")
                with values_withheld(f"reading {relative}"):
                    upload = read_upload(path.name, data)
                    del data  # the file's bytes: the frame holds what is needed of them
                    entry["encoding"] = upload.encoding
                    frame = upload.frame
                    if frame.height and not {"email", "phone"} & set(frame.columns):
                        raise UnreadableFile("no_contact_columns")
                    rows = normalised(frame, self.regions.get(workspace))
                    del upload, frame  # the file's text columns: `rows` holds what is kept of them
            except UnreadableFile as exc:
                quarantine.append(self._quarantined(relative, 0, workspace, exc.reason))
                ledger.append({**entry, "status": "rejected", "rows_quarantined": 1})
                self.report.files_rejected += 1
                continue
            bad = rows.filter(pl.col(REASON).is_not_null())
            quarantine += [self._quarantined(relative, r[ROW], workspace, r[REASON])
                           for r in bad.select(ROW, REASON).iter_rows(named=True)]
            staged = self._stage(rows, relative, workspace, order, staged) or staged
            entry.update(rows=rows.height, rows_quarantined=bad.height)
            ledger.append(entry)
            self.report.files_loaded += 1
            self.report.rows += rows.height
            self.report.rows_quarantined += bad.height
        if staged:
            self._deduplicate(ledger)
        return {QUARANTINE_TABLE: quarantine, LEDGER_TABLE: ledger}

    def _stored_types(self) -> list[pa.DataType]:
        return [f.type for f in self.work.con.sql("SELECT * FROM kept_contacts LIMIT 0").to_arrow_table().schema
                if f.name in CONTACT_COLUMNS]

    def _quarantined(self, relative: str, row: int, workspace: str, reason: str) -> dict:
        return {"source_file": relative, "source_row": row, "workspace_id": workspace, "reason": reason,
                "received_at": self.now}

    def _stage(self, rows: pl.DataFrame, relative: str, workspace: str, order: int, append: bool) -> bool:
        """Protect a file's good rows (`rows` without a `_reason`) and add them to the work table
        `staged_contacts` (created unless `append`); whether there were any. A slice of rows at a time, so a
        million-row file never holds all its ciphertexts, or a second copy of its rows, in memory at once. The
        work tables are temporary: nothing is written to the work database's file (a checkpoint would compress
        and write every ciphertext once more); past the work database's memory limit they spill to its
        temporary folder, which is deleted with it."""
        staged = False
        for part in rows.iter_slices(BATCH_ROWS):
            good = part.filter(pl.col(REASON).is_null())
            if not good.height:
                continue
            staged = True
            plain = _plain_contacts(good, workspace, relative, self.now)
            with values_withheld(f"protecting {relative}"):
                protected, dropped = protect_table(self.work.con, plain, CONTACT_COLUMNS, self.cipher,
                                                   table=CONTACTS_TABLE, regions=self.regions)
            self.report.rows_suppressed += dropped
            if append:
                self.work.con.execute(f"INSERT INTO staged_contacts SELECT *, {order} FROM protected")
            else:
                self.work.con.execute(f"CREATE OR REPLACE TEMP TABLE staged_contacts AS SELECT *, {order} "
                                      "AS file_order FROM protected")
                append = True
            del protected, plain
        return staged

    def _deduplicate(self, ledger: list[dict]) -> None:
        """One row per workspace and person: a file's first row of them, the latest file's across files; the
        ledger entries get their files' loaded and dropped counts."""
        con = self.work.con
        con.execute("CREATE OR REPLACE TEMP TABLE kept_contacts AS SELECT * FROM staged_contacts "
                    "QUALIFY row_number() OVER (PARTITION BY workspace_id, subject_ref "
                    "ORDER BY file_order DESC, source_row) = 1")
        staged = dict(con.execute("SELECT source_file, count(*) FROM staged_contacts GROUP BY 1").fetchall())
        kept = dict(con.execute("SELECT source_file, count(*) FROM kept_contacts GROUP BY 1").fetchall())
        for entry in ledger:
            entry["contacts_loaded"] = kept.get(entry["source_file"], 0)
            entry["duplicates_dropped"] = staged.get(entry["source_file"], 0) - entry["contacts_loaded"]
            self.report.contacts_loaded += entry["contacts_loaded"]
            self.report.duplicates_dropped += entry["duplicates_dropped"]
        self._contacts = True

    def _ledger(self) -> set[tuple[str, str]]:
        """(file, SHA-256) of every file the warehouse has loaded."""
        return {tuple(r) for r in self._warehouse_rows(LEDGER_TABLE, "SELECT source_file, sha256 FROM {}")}

    def _warehouse_rows(self, table: str, sql: str) -> list[tuple]:
        path = self.work.warehouse_path
        dataset, name = table.split(".") if "." in table else (DATASET_NAME, table)
        if path is None or not path.exists():
            return []
        with duckdb.connect(str(path), read_only=True) as wh:
            if not table_exists(wh, dataset, name):
                return []
            return wh.execute(sql.format(qualified(f"{dataset}.{name}"))).fetchall()

    def remove_loaded(self) -> None:
        """After the load: delete the files it took (the warehouse holds them now, encrypted)."""
        for path in self.report.loaded_paths:
            path.unlink(missing_ok=True)


def _plain_contacts(good: pl.DataFrame, workspace: str, relative: str, now: dt.datetime) -> pa.Table:
    """A file's good rows as the plaintext contacts table (`plain_schema`) that protection takes."""
    return good.select(
        pl.lit(workspace).alias("workspace_id"), pl.lit(None, dtype=pl.Binary).alias("subject_ref"),
        "first_name", "last_name", "email", pl.lit(None, dtype=pl.Binary).alias("email_bidx"), "phone",
        pl.lit(None, dtype=pl.Binary).alias("phone_bidx"), "company", "email_opt_in",
        pl.lit(relative).alias("source_file"), pl.col(ROW).cast(pl.Int64).alias("source_row"),
        pl.lit(now).alias("uploaded_at"),
    ).to_arrow().cast(plain_schema(CONTACT_COLUMNS))


@dlt.source(name=SOURCE_NAME, max_table_nesting=0)
def contact_uploads_source(run: UploadRun | None):
    """The three tables of the uploads (`None` only declares them, for Dagster). One read of the landing zone
    feeds all three, so they load in one package."""
    return [dlt.resource(run.rows(table) if run else [], name=table, write_disposition=MERGE, columns=columns,
                         primary_key=[c for c, hint in columns.items() if hint.get("primary_key")])
            for table, columns in TABLES.items()]


def load_uploads(landing: str | Path, cipher, *, warehouse_path: str | Path, dlt_dir: str | Path,
                 work_dir: str | Path, known_workspaces: frozenset[str], now: dt.datetime | None = None) -> UploadReport:
    """Load every new upload with plain dlt (what the Dagster asset does through dagster-dlt)."""
    with warehouse_lock(warehouse_path, f"{SOURCE_NAME} load"):
        pipeline = warehouse_pipeline(SOURCE_NAME, DATASET_NAME, warehouse_path, dlt_dir)
        finish_pending(pipeline)
        work = WorkDatabase(work_dir, warehouse_path)
        try:
            run = UploadRun(Path(landing), cipher, work, known_workspaces=known_workspaces, now=now)
            pipeline.run(contact_uploads_source(run)).raise_on_failed_jobs()
        finally:
            work.close()
        run.remove_loaded()
    return run.report
