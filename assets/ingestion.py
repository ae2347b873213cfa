"""Usage and device events: the daily-partitioned dlt assets, their checks, the landing sensor and job.

A partition is an arrival day (`dt=` folder of the landing location), and each day runs on its own
(backfills launch one run per day, queued behind each other by the `warehouse` pool), so every day's
materialisation carries that day's own counts. A file already in the ledger is never loaded again, so
re-running or backfilling a day loads only what it has not loaded before. The checks read the warehouse, so they
are in the `warehouse` pool too: a run that holds the warehouse is never read from under it.
"""


import datetime as dt
import hashlib
import os
from collections import defaultdict
from pathlib import Path

import fsspec
from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetExecutionContext,
    AssetKey,
    AssetSelection,
    BackfillPolicy,
    DailyPartitionsDefinition,
    DefaultSensorStatus,
    MaterializeResult,
    MetadataValue,
    RunRequest,
    SensorEvaluationContext,
    SkipReason,
    asset_check,
    define_asset_job,
    sensor,
)
from dagster_dlt import DagsterDltResource

from assets.checks import unique_keys_check
from assets.translator import load, warehouse_dlt_assets
from pipelines import paths
from pipelines.privacy.categories import stored_tables
from pipelines.privacy.consent import identified_after_withdrawal
from pipelines.catalog import LANDING_ZONES
from pipelines.privacy.landed_index import index_landing
from pipelines.privacy.landed_lifecycle import archive_url
from pipelines.privacy.scan import unprotected_values
from pipelines.usage_events import IngestReport, usage_events_source
from pipelines.usage_events.landing import discover_files
from pipelines.usage_events.settings import (
    DATASET_NAME,
    EVENTS_TABLE,
    LANDING_SUBJECT_FIELDS,
    LEDGER_TABLE,
    PARTITION_PREFIX,
    QUARANTINE_TABLE,
    SOURCE_NAME,
)
from pipelines.usage_events.work import LedgerIndex, ledger_index
from pipelines.warehouse import WarehouseBusy, finish_pending, table_exists
from resources.keyring import KeyringResource
from resources.landing import LandingResource
from resources.warehouse import WAREHOUSE_POOL, WarehouseResource

def first_event_day(landing_url: str) -> dt.date:
    """Where the event partitions start: GTG_EVENTS_START_DATE, else the earliest arrival day that ever landed
    (a `dt=` folder of the landing location or of its archive, which keeps archived days' folders), else today.
    Days before it cannot hold data, so the UI does not list hundreds of them as missing."""
    if configured := os.environ.get("GTG_EVENTS_START_DATE"):
        return dt.date.fromisoformat(configured)
    days = []
    for url in (landing_url, archive_url(landing_url)):
        fs, root = fsspec.core.url_to_fs(url)
        for folder in fs.glob(f"{root.rstrip('/')}/{PARTITION_PREFIX}*"):
            try:
                days.append(dt.date.fromisoformat(folder.rstrip("/").rsplit("/", 1)[-1][len(PARTITION_PREFIX):]))
            except ValueError:
                continue  # not a day folder: ingestion ignores it too
    return min(days, default=dt.datetime.now(dt.timezone.utc).date())


EVENT_DAYS = DailyPartitionsDefinition(start_date=first_event_day(paths.events_landing_url()).isoformat(), end_offset=1)
EVENTS_KEY = AssetKey([DATASET_NAME, EVENTS_TABLE])
# The share of quarantined lines above which the latest load is flagged (GTG_QUARANTINE_MAX_SHARE).
QUARANTINE_MAX_SHARE = float(os.environ.get("GTG_QUARANTINE_MAX_SHARE", "0.05"))


def _partition_days(context: AssetExecutionContext) -> list[dt.date]:
    window = context.partition_time_window
    start, end = window.start.date(), window.end.date()
    return [start + dt.timedelta(days=i) for i in range((end - start).days)]


_ZONE = next(zone for zone in LANDING_ZONES if zone.name == SOURCE_NAME)


@warehouse_dlt_assets(
    usage_events_source(landing_url="", cipher=None, work_dir=""), SOURCE_NAME, DATASET_NAME, name=SOURCE_NAME,
    partitions_def=EVENT_DAYS, backfill_policy=BackfillPolicy.multi_run(max_partitions_per_run=1),
)
def usage_events_assets(
    context: AssetExecutionContext,
    dlt_runner: DagsterDltResource,
    warehouse: WarehouseResource,
    keyring: KeyringResource,
    landing: LandingResource,
):
    """Load the landed event files of the selected days that were never loaded before.

    The keyring opens first, so a missing or wrong master key stops the run before anything is written;
    packages an interrupted run left behind are finished next (dagster-dlt would otherwise drop them).
    """
    days = _partition_days(context)
    pipeline = warehouse.pipeline(SOURCE_NAME, DATASET_NAME)
    with keyring.open() as cipher:
        recovered = finish_pending(pipeline)
        report = IngestReport()
        source = usage_events_source(landing.url, cipher, warehouse.work_dir, warehouse.path, days, report,
                                     landing.known_workspaces())
        for result in load(context, dlt_runner, source, pipeline, warehouse):
            yield MaterializeResult(
                asset_key=result.asset_key,
                metadata={**(result.metadata or {}), **_report_metadata(report, recovered)},
            )
        # Which file holds whom, for the files just loaded: an erasure then reads only the person's files
        index_landing(_ZONE, landing.url, cipher, Path(warehouse.work_dir))


# At most this many files are named per list in a run's metadata (the counts stay whole).
_NAMED_FILES = 100


def _report_metadata(report: IngestReport, recovered: list[str]) -> dict:
    """Counts, reason codes and landed file paths only: nothing here may carry personal data."""
    return {
        "files_read": report.files_read,
        "files_already_loaded": report.files_skipped,
        "files_not_taken": len(report.skipped_files),
        "files_not_taken_reasons": MetadataValue.json(dict(list(report.skipped_files.items())[:_NAMED_FILES])),
        "files_changed_after_load": MetadataValue.json(report.changed_files[:_NAMED_FILES]),
        "quarantine_by_file": MetadataValue.json(dict(list(report.quarantined_by_file.items())[:_NAMED_FILES])),
        "lines_read": report.lines,
        "events_loaded": report.events_loaded,
        "duplicates_dropped": report.duplicates_dropped,
        "lines_quarantined": report.lines_quarantined,
        "quarantine_share": MetadataValue.float(round(report.quarantine_share, 6)),
        "quarantine_reasons": MetadataValue.json(report.quarantine_reasons),
        "recovered_loads": len(recovered),
    }


events_unique_event_ids = unique_keys_check(EVENTS_KEY, DATASET_NAME, EVENTS_TABLE, ["event_id"],
                                            name="events_unique_event_ids", description="No event id is stored twice.")


@asset_check(
    asset=EVENTS_KEY,
    pool=WAREHOUSE_POOL,
    description=f"The latest load quarantined at most {QUARANTINE_MAX_SHARE:.0%} of its lines, and every line "
    "read is either loaded, a dropped duplicate or quarantined.",
)
def events_quarantine_share(context: AssetCheckExecutionContext, warehouse: WarehouseResource) -> AssetCheckResult:
    with warehouse.connect() as con:
        if not table_exists(con, DATASET_NAME, LEDGER_TABLE):
            return AssetCheckResult(passed=True, metadata={"lines": 0})
        lines, loaded, dups, quarantined = con.execute(
            f"SELECT sum(lines), sum(events_loaded), sum(duplicates_dropped), sum(lines_quarantined) "
            f"FROM {DATASET_NAME}.{LEDGER_TABLE} "
            f"WHERE _dlt_load_id = (SELECT max(_dlt_load_id) FROM {DATASET_NAME}.{LEDGER_TABLE})"
        ).fetchone()
    share = quarantined / lines if lines else 0.0
    balanced = lines == loaded + dups + quarantined
    return AssetCheckResult(
        passed=share <= QUARANTINE_MAX_SHARE and balanced,
        severity=AssetCheckSeverity.WARN if balanced else AssetCheckSeverity.ERROR,
        metadata={"lines": int(lines or 0), "lines_quarantined": int(quarantined or 0),
                  "quarantine_share": MetadataValue.float(round(share, 6)), "balanced": balanced},
    )


@asset_check(
    asset=EVENTS_KEY,
    pool=WAREHOUSE_POOL,
    description="Every column declared as personal data (x-data-category in the stored dlt schema) of the "
    "events and quarantine tables holds only ciphertext.",
)
def events_personal_data_encrypted(
    context: AssetCheckExecutionContext, warehouse: WarehouseResource
) -> AssetCheckResult:
    with warehouse.connect() as con:
        tables = stored_tables(con, DATASET_NAME)
        readable = {
            f"{table}.{column}": count
            for table in (EVENTS_TABLE, QUARANTINE_TABLE)
            if table in tables and table_exists(con, DATASET_NAME, table)
            for column, count in unprotected_values(con, DATASET_NAME, table, tables[table]).items()
        }
    return AssetCheckResult(
        passed=not any(readable.values()),
        metadata={"columns_checked": len(readable), "readable_values": MetadataValue.json(readable)},
    )


@asset_check(
    asset=EVENTS_KEY,
    description="No landed file changed after it was loaded in a way that added lines (a file taken before it was "
    "complete): its new lines were loaded when it was read again, but the earlier load had missed them. A file "
    "that only lost lines (an erasure scrubs landed files) passes.",
)
def events_landed_files_unchanged(
    context: AssetCheckExecutionContext, warehouse: WarehouseResource
) -> AssetCheckResult:
    with warehouse.connect() as con:
        if not table_exists(con, DATASET_NAME, LEDGER_TABLE) or not ledger_index(con).paths:
            return AssetCheckResult(passed=True, metadata={"files_changed": 0})
        rows = con.execute(
            f"""
            SELECT file_path, count(*) - 1, sum(events_loaded + lines_quarantined) FILTER (version > 1)
            FROM (SELECT *, row_number() OVER (PARTITION BY file_path ORDER BY _dlt_load_id) AS version
                  FROM {DATASET_NAME}.{LEDGER_TABLE} WHERE file_path IS NOT NULL)
            GROUP BY file_path HAVING count(*) > 1 ORDER BY file_path
            """
        ).fetchall()
    grew = {path: int(added) for path, _, added in rows if added}
    return AssetCheckResult(
        passed=not grew,
        severity=AssetCheckSeverity.ERROR,
        metadata={"files_changed": len(rows), "files_with_lines_added_after_load": MetadataValue.json(
            dict(list(grew.items())[:_NAMED_FILES]))},
    )


@asset_check(
    asset=EVENTS_KEY,
    pool=WAREHOUSE_POOL,
    description="No event loaded after its visitor withdrew analytics consent (or was erased) carries one of "
    "the visitor's identifiers: an opted-out visitor's events are stored without user, cookie or device id.",
)
def events_opted_out_without_identifiers(
    context: AssetCheckExecutionContext, warehouse: WarehouseResource
) -> AssetCheckResult:
    indexes = tuple(f"{field}_bidx" for field in LANDING_SUBJECT_FIELDS)
    with warehouse.connect() as con:
        identified = identified_after_withdrawal(con, f"{DATASET_NAME}.{EVENTS_TABLE}", indexes)
    return AssetCheckResult(passed=identified == 0, severity=AssetCheckSeverity.ERROR,
                            metadata={"events_identified_after_opt_out": identified})


EVENT_CHECKS = [events_unique_event_ids, events_quarantine_share, events_personal_data_encrypted,
                events_landed_files_unchanged, events_opted_out_without_identifiers]

usage_events_job = define_asset_job(
    "usage_events_job",
    selection=AssetSelection.assets(usage_events_assets),
    partitions_def=EVENT_DAYS,
    description="Load landed usage and device events for the selected days.",
)


def pending_files_by_day(landing_url: str, warehouse: WarehouseResource, wait: float | None = None
                         ) -> dict[str, list[str]]:
    """Landed files that the ledger does not record as loaded, by arrival day.

    Reads under the shared warehouse lock, waiting at most `wait` seconds for a writer; WarehouseBusy after
    that, or at once while a program that bypasses the lock has the file open.
    """
    files = discover_files(landing_url)
    ledger = LedgerIndex()
    if Path(warehouse.path).exists():
        with warehouse.connect(wait=wait) as con:
            ledger = ledger_index(con)
    pending: dict[str, list[str]] = defaultdict(list)
    for f in files:
        if not ledger.loaded(f):
            pending[f.received_date.isoformat()].append(f"{f.path}:{f.size}:{f.modified}")
    return dict(pending)


def _fingerprint(urls: list[str]) -> str:
    return hashlib.sha256("\n".join(sorted(urls)).encode()).hexdigest()[:16]


@sensor(
    job=usage_events_job,
    minimum_interval_seconds=60,
    default_status=DefaultSensorStatus.RUNNING,
    description="Requests a load of every arrival day that has landed files the ledger has not loaded.",
)
def usage_events_landing_sensor(
    context: SensorEvaluationContext, landing: LandingResource, warehouse: WarehouseResource
):
    """The run key names the day and its pending files, so a day is requested once per set of new files."""
    try:
        pending = pending_files_by_day(landing.url, warehouse, wait=0)
    except WarehouseBusy as busy:  # a run holds it, or a program that bypasses the lock has it open
        return SkipReason(f"the warehouse is being written by {busy.holder}; looking again at the next tick")
    valid_days = set(EVENT_DAYS.get_partition_keys())
    requests = [
        RunRequest(partition_key=day, run_key=f"{day}:{_fingerprint(urls)}")
        for day, urls in sorted(pending.items())
        if day in valid_days
    ]
    if not requests:
        return SkipReason("every landed file is loaded")
    return requests
