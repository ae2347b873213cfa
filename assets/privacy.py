"""Privacy assets: retention per governed table (daily), data-subject requests (sensor-driven), their checks.

The retention rules come from `pipelines/privacy/retention_policy.toml`, checked against the sources'
declared tables when this module loads: a wrong table, column, action or term stops `dagster dev` with the
policy error instead of failing a run later. Each governed table gets one retention asset downstream of it
and one `within_retention` check on the table itself, which runs after the retention asset and fails when
any record is older than its rule allows: the proof, in the UI, next to the data.
"""

import datetime as dt
from pathlib import Path

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetChecksDefinition,
    AssetExecutionContext,
    AssetKey,
    AssetSelection,
    AssetsDefinition,
    Config,
    DefaultScheduleStatus,
    DefaultSensorStatus,
    MaterializeResult,
    MetadataValue,
    RunRequest,
    ScheduleDefinition,
    SensorEvaluationContext,
    SkipReason,
    asset,
    asset_check,
    define_asset_job,
    sensor,
)

from assets.analytics import MODELS, snapshot_path
from assets.sql_models import pseudonymous_tables
from pipelines.catalog import ASSET_OF_TABLE, DECLARED_TABLES, LANDING_ZONES
from pipelines.privacy.dsr import process_pending
from pipelines.privacy.landed_lifecycle import overdue, sweep
from pipelines.privacy.policy import LandedRule, Rule, load_policy
from pipelines.privacy.retention import cutoff, past_retention, run_rule
from pipelines.warehouse import publish_snapshot
from resources.keyring import KeyringResource
from resources.privacy import PrivacyResource
from resources.warehouse import WAREHOUSE_POOL, WarehouseResource

# What the policy governs: every table the sources load, and the SQL models holding pseudonymous keys.
DERIVED_TABLES = pseudonymous_tables(MODELS)
POLICY = load_policy({**DECLARED_TABLES, **DERIVED_TABLES})
GROUP = "privacy"
REQUESTS_KEY = AssetKey(["privacy", "data_subject_requests"])
# A request due within this many days is flagged (warning) before its deadline passes.
DEADLINE_WARNING_DAYS = 7


class AsOfConfig(Config):
    """`as_of` (ISO timestamp, UTC if no offset) evaluates retention at another moment than now: to
    preview what a policy change would expire, or to test it."""

    as_of: str | None = None


def _now(config: AsOfConfig) -> dt.datetime:
    if not config.as_of:
        return dt.datetime.now(dt.timezone.utc)
    moment = dt.datetime.fromisoformat(config.as_of)
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.timezone.utc)


def _asset_of(table: str) -> AssetKey:
    """The asset that materialises a governed table: the dlt asset that loads it, or the model itself."""
    return AssetKey(list(ASSET_OF_TABLE.get(table, table.split("."))))


def retention_key(rule: Rule) -> AssetKey:
    return AssetKey(["privacy", "retention", rule.dataset, rule.name])


def _retention_asset(rule: Rule) -> AssetsDefinition:
    @asset(
        key=retention_key(rule),
        deps=[_asset_of(rule.table)],
        group_name=GROUP,
        kinds={"duckdb"},
        pool=WAREHOUSE_POOL,
        description=f"{rule.action.capitalize()} records of {rule.table} older than {rule.keep_days} days "
        f"(by {rule.age_column}); term: {rule.term.provider} — {rule.term.text}",
    )
    def enforce_retention(
        context: AssetExecutionContext, config: AsOfConfig, warehouse: WarehouseResource,
        keyring: KeyringResource, privacy: PrivacyResource,
    ) -> MaterializeResult:
        with keyring.open() as cipher, warehouse.connect(read_only=False) as con:
            result = run_rule(con, rule, cipher, privacy.audit(), _now(config), DERIVED_TABLES)
        return MaterializeResult(metadata={
            "action": rule.action, "keep_days": rule.keep_days, "cutoff": result.cutoff, "term": rule.term.id,
            "rows_expired": result.rows_expired, "subjects_expired": result.subjects_expired,
            "keys_destroyed": result.keys_destroyed,
        })

    return enforce_retention


def _within_retention_check(rule: Rule):
    @asset_check(
        asset=_asset_of(rule.table),
        name=f"within_retention__{rule.name}",
        additional_deps=[retention_key(rule)],
        description=f"No record of {rule.table} is older than {rule.keep_days} days by {rule.age_column}"
        + (" unless anonymised." if rule.action == "anonymise" else "."),
    )
    def within_retention(
        context: AssetCheckExecutionContext, config: AsOfConfig, warehouse: WarehouseResource
    ) -> AssetCheckResult:
        now = _now(config)
        with warehouse.connect() as con:
            found = past_retention(con, rule, now, DERIVED_TABLES)
        return AssetCheckResult(passed=found == 0, metadata={
            "records_past_retention": found, "cutoff": str(cutoff(rule, now)), "keep_days": rule.keep_days})

    return within_retention


def _landed_key(rule: LandedRule) -> AssetKey:
    return AssetKey(["privacy", "retention", "landed", rule.zone])


def _landed_assets(rule: LandedRule) -> tuple[AssetsDefinition, AssetChecksDefinition]:
    """The lifecycle of a landing zone's files (`pipelines.privacy.landed_lifecycle`), downstream of the asset
    that loads the zone (whose ledger says which files are loaded), and its check."""
    zone = next(z for z in LANDING_ZONES if z.name == rule.zone)
    loader = _asset_of(zone.ledger)
    then = f"archived encrypted for {rule.archive_days} days" if rule.action == "archive" else "deleted"

    @asset(key=_landed_key(rule), deps=[loader], group_name=GROUP, kinds={"duckdb"}, pool=WAREHOUSE_POOL,
           description=f"Landed {zone.name} files: once loaded, readable until the end of the day {rule.clear_days} "
           f"day(s) after arrival, then {then}; term: {rule.term.provider} — {rule.term.text}")
    def landed_lifecycle(context: AssetExecutionContext, config: AsOfConfig, warehouse: WarehouseResource,
                         keyring: KeyringResource, privacy: PrivacyResource) -> MaterializeResult:
        with keyring.open() as cipher, warehouse.connect() as con:
            report = sweep(zone, privacy.landing_urls[zone.name], rule, con, cipher, _now(config),
                           Path(warehouse.work_dir))
        privacy.audit().append(actor="privacy.retention", action=f"landed.{rule.action}", counts={
            "zone": zone.name, "clear_days": rule.clear_days, "term": rule.term.id, **vars(report)})
        return MaterializeResult(metadata={"action": rule.action, "clear_days": rule.clear_days,
                                           "term": rule.term.id, **vars(report)})

    # On the lifecycle asset, not the loader: a load of an old day must not fail for files the next sweep moves.
    @asset_check(asset=_landed_key(rule), name=f"within_retention__landed_{zone.name}",
                 description=f"No loaded {zone.name} file is readable past its replay window and no archive is "
                 "kept past its term.")
    def within_retention(context: AssetCheckExecutionContext, config: AsOfConfig, warehouse: WarehouseResource,
                         privacy: PrivacyResource) -> AssetCheckResult:
        with warehouse.connect() as con:
            found = overdue(zone, privacy.landing_urls[zone.name], rule, con, _now(config))
        return AssetCheckResult(passed=found.total == 0, metadata={
            "files_in_clear_past_window": found.files_in_clear, "archives_past_retention": found.archives,
            "clear_days": rule.clear_days})

    return landed_lifecycle, within_retention


LANDED = [_landed_assets(rule) for rule in POLICY.landed]
RETENTION_ASSETS = [_retention_asset(rule) for rule in POLICY.rules] + [a for a, _ in LANDED]
RETENTION_CHECKS = [_within_retention_check(rule) for rule in POLICY.rules] + [c for _, c in LANDED]

retention_job = define_asset_job(
    "privacy_retention_job",
    selection=AssetSelection.assets(*RETENTION_ASSETS) | AssetSelection.checks(*RETENTION_CHECKS),
    description="Delete or anonymise every record past its retention rule, then prove none is left.",
)

retention_schedule = ScheduleDefinition(
    job=retention_job, cron_schedule="30 2 * * *", execution_timezone="UTC",
    default_status=DefaultScheduleStatus.RUNNING,
)


# -- data-subject requests ------------------------------------------------------------------------------


@asset(
    key=REQUESTS_KEY,
    group_name=GROUP,
    kinds={"duckdb", "sqlite"},
    pool=WAREHOUSE_POOL,
    description="Processes every received access, correction, erasure and consent request in one batch.",
)
def data_subject_requests(
    context: AssetExecutionContext, warehouse: WarehouseResource, keyring: KeyringResource,
    privacy: PrivacyResource,
) -> MaterializeResult:
    inbox = privacy.inbox()
    with keyring.open() as cipher, warehouse.connect(read_only=False) as con:
        report = process_pending(con, cipher, inbox, privacy.audit(), exports_dir=Path(privacy.exports_dir),
                                 landing_urls=privacy.landing_urls, derived_tables=DERIVED_TABLES)
    snapshot = snapshot_path(warehouse)
    if snapshot.exists() and any(t.startswith("analytics.") for t in report.rows_by_table):
        publish_snapshot(Path(warehouse.path), snapshot)  # the analysts' copy must forget the erased too
    return MaterializeResult(metadata={
        "requests_completed": report.count("completed"),
        "requests_rejected": report.count("rejected"),
        "by_type": MetadataValue.json({k: sum(o.request_type == k for o in report.outcomes)
                                       for k in sorted({o.request_type for o in report.outcomes})}),
        "rows_by_table": MetadataValue.json(report.rows_by_table),
        "keys_destroyed": report.keys_destroyed,
        "landing_lines_removed": report.landing_lines_removed,
        "exports_removed": report.exports_removed,
        "requests": MetadataValue.md(_requests_markdown(inbox.all())),
    })


def _requests_markdown(rows: list[dict]) -> str:
    """Every request's id, type, source, status and deadline: ids and codes only, no personal data."""
    lines = ["| request | type | source | status | received | deadline | detail |", "|---|---|---|---|---|---|---|"]
    for r in rows[-200:]:
        lines.append(f"| {r['request_id']} | {r['request_type']} | {r['source']} | {r['status']} | "
                     f"{r['received_at'][:16]} | {r['deadline'][:10]} | {r['status_detail'] or ''} |")
    return "\n".join(lines)


@asset_check(asset=REQUESTS_KEY, description="Every open request is within its 30-day deadline.")
def requests_within_deadline(context: AssetCheckExecutionContext, privacy: PrivacyResource) -> AssetCheckResult:
    now = dt.datetime.now(dt.timezone.utc)
    open_requests = [r for r in privacy.inbox().all() if r["status"] == "received"]
    deadlines = [dt.datetime.fromisoformat(r["deadline"].replace("Z", "+00:00")) for r in open_requests]
    late = sum(d < now for d in deadlines)
    due_soon = sum(now <= d < now + dt.timedelta(days=DEADLINE_WARNING_DAYS) for d in deadlines)
    return AssetCheckResult(
        passed=late == 0 and due_soon == 0,
        severity=AssetCheckSeverity.ERROR if late else AssetCheckSeverity.WARN,
        metadata={"open_requests": len(open_requests), "past_deadline": late,
                  f"due_within_{DEADLINE_WARNING_DAYS}_days": due_soon},
    )


@asset_check(asset=REQUESTS_KEY, description="The audit log's hash chain is unbroken (nothing removed or edited).")
def audit_log_intact(context: AssetCheckExecutionContext, privacy: PrivacyResource) -> AssetCheckResult:
    status = privacy.audit().verify()
    return AssetCheckResult(passed=status.intact,
                            metadata={"entries": status.entries, "broken_at_entry": status.broken_at or 0})


REQUEST_CHECKS = [requests_within_deadline, audit_log_intact]

requests_job = define_asset_job(
    "data_subject_requests_job",
    selection=AssetSelection.assets(data_subject_requests),
    description="Process the data-subject requests waiting in the inbox.",
)


@sensor(
    job=requests_job,
    minimum_interval_seconds=30,
    default_status=DefaultSensorStatus.RUNNING,
    description="Starts a request batch whenever the inbox holds received requests.",
)
def data_subject_request_sensor(context: SensorEvaluationContext, privacy: PrivacyResource):
    """The run key is the newest pending request, so each new arrival is picked up once."""
    pending = privacy.inbox().pending()
    if not pending:
        return SkipReason("no pending data-subject requests")
    return RunRequest(run_key=f"dsr:{pending[-1]['request_id']}:{len(pending)}",
                      tags={"privacy/pending_requests": str(len(pending))})


PRIVACY_ASSETS = [*RETENTION_ASSETS, data_subject_requests]
PRIVACY_CHECKS = [*RETENTION_CHECKS, *REQUEST_CHECKS]
