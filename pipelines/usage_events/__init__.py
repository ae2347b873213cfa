"""The usage and device events source: landed NDJSON files into `raw_events`, validated, deduplicated,
enriched and with personal data encrypted before dlt ever sees it.

Plain dlt, no Dagster. One resource reads the files not yet loaded and yields three tables: the events,
the quarantine (every invalid line with its reason, file and line number) and the landing ledger (one row
per file, the exactly-once record). The ledger rows travel in the same load package as the rows they
account for, so a file counts as loaded exactly when its rows are.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Collection, Iterable, Iterator

import dlt
import pyarrow as pa

from pipelines.errors import values_withheld
from pipelines.privacy.protect import FieldCipher
from pipelines.usage_events.contract import load_contract
from pipelines.usage_events.landing import SkippedFile, chunk_files, discover
from pipelines.usage_events.settings import (
    DATASET_NAME,
    EVENT_COLUMNS,
    EVENTS_TABLE,
    LEDGER_COLUMNS,
    LEDGER_TABLE,
    QUARANTINE_COLUMNS,
    QUARANTINE_TABLE,
    SLICE_BYTES,
    SOURCE_NAME,
)
from pipelines.usage_events.work import EventWork
from pipelines.warehouse import finish_pending, warehouse_lock, warehouse_pipeline


@dataclass
class IngestReport:
    """What one extraction saw; counts, codes and landed file paths only, never data (it ends up in Dagster
    metadata). `files_skipped` counts files already loaded; `skipped_files` names each entry not taken, by its
    path relative to the landing root, with the reason (see `landing.SKIP_REASONS`); `changed_files` names
    files loaded before whose content has changed since (read again: lines already held count as duplicates);
    `quarantined_by_file` gives each file's quarantined lines by reason."""

    files_found: int = 0
    files_skipped: int = 0
    files_read: int = 0
    lines: int = 0
    events_loaded: int = 0
    duplicates_dropped: int = 0
    lines_quarantined: int = 0
    quarantine_reasons: dict[str, int] = field(default_factory=dict)
    skipped_files: dict[str, str] = field(default_factory=dict)
    changed_files: list[str] = field(default_factory=list)
    quarantined_by_file: dict[str, dict[str, int]] = field(default_factory=dict)

    def add(self, counts: dict[str, int], reasons: dict[str, int], by_file: dict[str, dict[str, int]]) -> None:
        """Add one slice's counts."""
        for name, value in counts.items():
            setattr(self, name, getattr(self, name) + value)
        for reason, value in reasons.items():
            self.quarantine_reasons[reason] = self.quarantine_reasons.get(reason, 0) + value
        self.quarantined_by_file.update(by_file)

    def skip(self, skipped: Iterable[SkippedFile]) -> None:
        """Record entries not taken by this run."""
        self.skipped_files.update((s.path, s.reason) for s in skipped)

    @property
    def quarantine_share(self) -> float:
        return self.lines_quarantined / self.lines if self.lines else 0.0


def _hinted(batch: pa.RecordBatch | pa.Table, table: str, columns, keys: list[str], first: bool):
    """Route a batch to its table; the first batch of each table also carries that table's own hints (a
    table variant, so the resource's event columns do not leak into it). The arrow schema is marked with
    the declared nullability (zero-copy), so dlt finds nothing to reconcile."""
    fields = [f.with_nullable(columns.get(f.name, {}).get("nullable", True) and f.name != "_dlt_load_id")
              for f in batch.schema]
    batch = type(batch).from_arrays(batch.columns, schema=pa.schema(fields))
    if first:
        hints = dlt.mark.make_hints(table_name=table, columns=columns, primary_key=keys, write_disposition="append")
        return dlt.mark.with_hints(batch, hints, create_table_variant=True)
    return dlt.mark.with_table_name(batch, table)


@dlt.source(name=SOURCE_NAME, max_table_nesting=0)
def usage_events_source(
    landing_url: str,
    cipher: FieldCipher,
    work_dir: str,
    warehouse_path: str | None = None,
    received_dates: Iterable[dt.date] | None = None,
    report: IngestReport | None = None,
    workspaces: Collection[str] = (),
):
    """Events landed under `landing_url` (optionally only the given arrival days) not loaded before.

    `warehouse_path` is read (read-only) for the ledger of loaded files and the ids already loaded;
    `cipher` is the keyring that encrypts personal columns; `report` receives the counts; `workspaces` are the
    workspaces the platform knows (`pipelines.workspaces.known_workspaces`): other workspaces' events are
    quarantined.
    """
    return usage_events(landing_url, cipher, work_dir, warehouse_path,
                        list(received_dates) if received_dates is not None else None, report or IngestReport(),
                        frozenset(workspaces))


# No table hints on the resource itself: dlt starts every table variant from them, so each of the three
# tables carries its own hints with its first batch instead. Parallelized: dlt computes each next batch in its
# worker thread (DuckDB, the keyring) while its main thread writes the previous one, so the two overlap.
@dlt.resource(name=EVENTS_TABLE, write_disposition="append", parallelized=True)
def usage_events(
    landing_url: str,
    cipher: FieldCipher,
    work_dir: str,
    warehouse_path: str | None,
    received_dates: list[dt.date] | None,
    report: IngestReport,
    workspaces: frozenset[str],
) -> Iterator[pa.RecordBatch]:
    found = discover(landing_url, received_dates)
    report.files_found = len(found.files)
    report.skip(found.skipped)
    load_id = dlt.current.load_package_state()["load_id"]
    with values_withheld("events ingestion"), EventWork(Path(work_dir), load_contract(), load_id, workspaces) as work:
        ledger = work.ledger_index(warehouse_path)
        todo = [f for f in found.files if not ledger.loaded(f)]
        report.files_skipped = len(found.files) - len(todo)
        first = dict.fromkeys((EVENTS_TABLE, QUARANTINE_TABLE, LEDGER_TABLE), True)
        while todo:
            files_of_slice = next(chunk_files(todo, SLICE_BYTES))
            read = work.load_files(files_of_slice, ledger)
            todo = read.deferred + todo[len(files_of_slice):]
            report.skip(read.skipped)
            report.files_skipped += read.already_loaded
            report.files_read += len(files_of_slice) - len(read.deferred) - len(read.skipped) - read.already_loaded
            report.changed_files.extend(read.changed)
            work.resolve_duplicates(warehouse_path, cipher)
            report.add(work.counts(), work.quarantine_reasons(), work.quarantine_by_file())
            work.stage(cipher)
            for table, columns, keys, batches in (
                (EVENTS_TABLE, EVENT_COLUMNS, ["event_id"], work.events(cipher)),
                (QUARANTINE_TABLE, QUARANTINE_COLUMNS, ["source_file", "source_line"], work.quarantine(cipher)),
                (LEDGER_TABLE, LEDGER_COLUMNS, ["file_path", "content_sha256"], [work.ledger()]),
            ):
                for batch in batches:
                    if batch.num_rows:
                        yield _hinted(batch, table, columns, keys, first[table])
                        first[table] = False


def ingest(
    landing_url: str,
    cipher: FieldCipher,
    *,
    warehouse_path: str | Path,
    dlt_dir: str | Path,
    work_dir: str | Path,
    workspaces: Collection[str],
    received_dates: Iterable[dt.date] | None = None,
) -> IngestReport:
    """Run the source with plain dlt (what the Dagster asset does through dagster-dlt): finish what an
    interrupted run left, then extract, normalise and load the new files, all under the warehouse lock, so a
    second ingestion started meanwhile waits and then finds every file in the ledger (exactly once)."""
    with warehouse_lock(warehouse_path, "usage events ingestion (python -m pipelines.usage_events)"):
        pipeline = warehouse_pipeline(SOURCE_NAME, DATASET_NAME, warehouse_path, dlt_dir)
        finish_pending(pipeline)
        report = IngestReport()
        source = usage_events_source(str(landing_url), cipher, str(work_dir), str(warehouse_path), received_dates,
                                     report, workspaces)
        pipeline.run(source).raise_on_failed_jobs()
    return report
