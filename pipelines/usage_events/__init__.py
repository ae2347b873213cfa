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
from typing import Iterable, Iterator

import dlt
import pyarrow as pa

from pipelines.privacy.protect import FieldCipher
from pipelines.usage_events.contract import load_contract
from pipelines.usage_events.landing import chunk_files, discover_files
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
    """What one extraction saw; counts and codes only, never data (it ends up in Dagster metadata)."""

    files_found: int = 0
    files_skipped: int = 0
    files_read: int = 0
    lines: int = 0
    events_loaded: int = 0
    duplicates_dropped: int = 0
    lines_quarantined: int = 0
    quarantine_reasons: dict[str, int] = field(default_factory=dict)

    def add(self, counts: dict[str, int], reasons: dict[str, int]) -> None:
        """Add one slice's counts."""
        for name, value in counts.items():
            setattr(self, name, getattr(self, name) + value)
        for reason, value in reasons.items():
            self.quarantine_reasons[reason] = self.quarantine_reasons.get(reason, 0) + value

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
):
    """Events landed under `landing_url` (optionally only the given arrival days) not loaded before.

    `warehouse_path` is read (read-only) for the ledger of loaded files and the ids already loaded;
    `cipher` is the keyring that encrypts personal columns; `report` receives the counts.
    """
    return usage_events(landing_url, cipher, work_dir, warehouse_path,
                        list(received_dates) if received_dates is not None else None, report or IngestReport())


# No table hints on the resource itself: dlt starts every table variant from them, so each of the three
# tables carries its own hints with its first batch instead.
@dlt.resource(name=EVENTS_TABLE, write_disposition="append")
def usage_events(
    landing_url: str,
    cipher: FieldCipher,
    work_dir: str,
    warehouse_path: str | None,
    received_dates: list[dt.date] | None,
    report: IngestReport,
) -> Iterator[pa.RecordBatch]:
    files = discover_files(landing_url, received_dates)
    report.files_found = len(files)
    load_id = dlt.current.load_package_state()["load_id"]
    with EventWork(Path(work_dir), load_contract(), load_id) as work:
        loaded = work.already_loaded(warehouse_path, [f.url for f in files])
        todo = [f for f in files if f.url not in loaded]
        report.files_skipped = len(files) - len(todo)
        report.files_read = len(todo)
        if not todo:
            return
        first = dict.fromkeys((EVENTS_TABLE, QUARANTINE_TABLE, LEDGER_TABLE), True)
        for files_of_slice in chunk_files(todo, SLICE_BYTES):
            work.load_files(files_of_slice)
            work.resolve_duplicates(warehouse_path)
            report.add(work.counts(), work.quarantine_reasons())
            work.stage(cipher)
            for table, columns, keys, batches in (
                (EVENTS_TABLE, EVENT_COLUMNS, ["event_id"], work.events(cipher)),
                (QUARANTINE_TABLE, QUARANTINE_COLUMNS, ["source_file", "source_line"], work.quarantine(cipher)),
                (LEDGER_TABLE, LEDGER_COLUMNS, ["file_url"], [work.ledger()]),
            ):
                for batch in batches:
                    yield _hinted(batch, table, columns, keys, first[table])
                    first[table] = False


def ingest(
    landing_url: str,
    cipher: FieldCipher,
    *,
    warehouse_path: str | Path,
    dlt_dir: str | Path,
    work_dir: str | Path,
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
                                     report)
        pipeline.run(source).raise_on_failed_jobs()
    return report
