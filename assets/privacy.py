"""Privacy assets: retention per governed table (daily), data-subject requests (sensor-driven), their checks.

The retention rules come from `pipelines/privacy/retention_policy.toml`, checked against the sources'
declared tables when this module loads: a wrong table, column, action or term stops `dagster dev` with the
policy error instead of failing a run later. Each governed table gets one retention asset downstream of it
and one `within_retention` check on the table itself, which runs after the retention asset and fails when
any record is older than its rule allows: the proof, in the UI, next to the data.
"""

import datetime as dt
from pathlib import Path

import duckdb
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

from assets import model_loads
from assets.analytics import MODELS, snapshot_path
from assets.sql_models import pseudonymous_tables
from pipelines.catalog import ASSET_OF_TABLE, DECLARED_TABLES, LANDING_ZONES
from pipelines.lakehouse.working_copy import write_back
from pipelines.privacy.dsr import foreign_rows_in_exports, process_pending
from pipelines.privacy.landed_lifecycle import overdue, sweep
from pipelines.privacy.policy import LandedRule, Rule, load_policy
from pipelines.privacy.retention import cutoff, past_retention, run_rule
from pipelines.warehouse import publish_snapshot
from resources.keyring import KeyringResource
from resources.privacy import PrivacyResource
from resources.warehouse import WAREHOUSE_POOL, WarehouseResource

# What the policy governs: every table the sources load, and the SQL models holding pseudonymous keys.
DERIVED_TABLES = pseudonymous_tables(MODELS)
GOVERNED_TABLES = [*DECLARED_TABLES, *DERIVED_TABLES]
POLICY = load_policy({**DECLARED_TABLES, **DERIVED_TABLES})
GROUP = "privacy"
REQUESTS_KEY = AssetKey(["privacy", "data_subject_requests"])
# A request due within this many days is flagged (warning) before its deadline passes.
DEADLINE_WARNING_DAYS = 7


class AsOfConfig(Config):
    """`as_of` (ISO timestamp, UTC if no offset) evaluates retention at another moment than now."""

    as_of: str | None = None


class RetentionConfig(AsOfConfig):
    """Without options the retention asset enforces the policy now. With `as_of` it is a preview: it counts
    what would expire at that moment and writes nothing (warehouse opened read-only, no key touched, no audit
    entry). Enforcing at another moment than now destroys data early, so it needs `confirm_as_of` repeating
    `as_of` exactly: a launchpad typo or a copied preview config cannot expire anything."""

    confirm_as_of: str | None = None

    def previewing(self) -> bool:
        if self.confirm_as_of is not None and self.confirm_as_of != self.as_of:
            raise ValueError("confirm_as_of must repeat as_of exactly to enforce retention at that moment")
        return bool(self.as_of) and self.confirm_as_of is None


def _now(config: AsOfConfig) -> dt.datetime:
    if not config.as_of:
        return dt.datetime.now(dt.timezone.utc)
    moment = dt.datetime.fromisoformat(config.as_of)
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.timezone.utc)


def _asset_of(table: str) -> AssetKey:
    """The asset that materialises a governed table: the dlt asset that loads it, or the model itself."""
    return AssetKey(list(ASSET_OF_TABLE.get(table, table.split("."))))


def retention_key(rule: Rule) -> AssetKey:
    """Named for what it does to which table (`anonymise_sessions`), so the graph never reads `sessions -> sessions`."""
    return AssetKey(["privacy", "retention", rule.dataset, f"{rule.action}_{rule.name}"])


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
        context: AssetExecutionContext, config: RetentionConfig, warehouse: WarehouseResource,
        keyring: KeyringResource, privacy: PrivacyResource,
    ) -> MaterializeResult:
        now, snapshot = _now(config), snapshot_path(warehouse)
        if config.previewing():
            with warehouse.connect() as con:
                found = past_retention(con, rule, now, DERIVED_TABLES)
            return MaterializeResult(metadata={
                "preview": True, "action": rule.action, "keep_days": rule.keep_days,
                "cutoff": str(cutoff(rule, now)), "rows_that_would_expire": found})
        with keyring.open() as cipher, warehouse.connect(read_only=False, changing=[rule.table]) as con:
            result = run_rule(con, rule, cipher, privacy.audit(cipher), now, DERIVED_TABLES)
            # The analysts' copy is governed too: republished while it holds what the rule just expired (a
            # rerun after a kill between the two finds it still there and republishes).
            republished = _snapshot_past_retention(rule, snapshot, now) > 0
            if republished:
                publish_snapshot(con, snapshot)
        return MaterializeResult(metadata={
            "action": rule.action, "keep_days": rule.keep_days, "cutoff": result.cutoff, "term": rule.term.id,
            "rows_expired": result.rows_expired, "subjects_expired": result.subjects_expired,
            "keys_destroyed": result.keys_destroyed,
            **({"snapshot_republished": republished} if rule.table in DERIVED_TABLES else {}),
        })

    return enforce_retention


def _within_retention_check(rule: Rule):
    @asset_check(
        asset=_asset_of(rule.table),
        name=f"within_retention__{rule.name}",
        pool=WAREHOUSE_POOL,
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
        in_snapshot = _snapshot_past_retention(rule, snapshot_path(warehouse), now)
        return AssetCheckResult(passed=found == 0 and in_snapshot == 0, metadata={
            "records_past_retention": found, "snapshot_records_past_retention": in_snapshot,
            "cutoff": str(cutoff(rule, now)), "keep_days": rule.keep_days})

    return within_retention


def _landed_key(rule: LandedRule) -> AssetKey:
    return AssetKey(["privacy", "retention", "landed", f"{rule.action}_{rule.zone}_files"])


def _landed_assets(rule: LandedRule) -> tuple[AssetsDefinition, AssetChecksDefinition]:
    """The lifecycle of a landing zone's files (`pipelines.privacy.landed_lifecycle`), downstream of the asset
    that loads the zone (whose ledger says which files are loaded), and its check."""
    zone = next(z for z in LANDING_ZONES if z.name == rule.zone)
    loader = _asset_of(zone.ledger)
    then = f"archived encrypted for {rule.archive_days} days" if rule.action == "archive" else "deleted"

    @asset(key=_landed_key(rule), deps=[loader], group_name=GROUP, kinds={"duckdb"}, pool=WAREHOUSE_POOL,
           description=f"Landed {zone.name} files: once loaded, readable until the end of the day {rule.clear_days} "
           f"day(s) after arrival, then {then}; term: {rule.term.provider} — {rule.term.text}")
    def landed_lifecycle(context: AssetExecutionContext, config: RetentionConfig, warehouse: WarehouseResource,
                         keyring: KeyringResource, privacy: PrivacyResource) -> MaterializeResult:
        now, url = _now(config), privacy.landing_urls[zone.name]
        if config.previewing():  # like the rules' preview: counts only, no file moved or deleted, no key made
            with warehouse.connect() as con:
                found = overdue(zone, url, rule, con, now)
            return MaterializeResult(metadata={
                "preview": True, "action": rule.action, "clear_days": rule.clear_days,
                "files_that_would_leave_the_clear": found.files_in_clear,
                "archives_that_would_expire": found.archives})
        with keyring.open() as cipher:
            with warehouse.connect() as con:
                report = sweep(zone, url, rule, con, cipher, now, Path(warehouse.work_dir))
            privacy.audit(cipher).append(actor="privacy.retention", action=f"landed.{rule.action}", counts={
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
    snapshot = snapshot_path(warehouse)
    if any(r["request_type"] != "access" for r in inbox.pending()):
        # Rows change without a load: the next analytics build is a full one. On a connection of its own: on the
        # lakehouse the pass's connection is a working copy of the lake tables, without the catalog's records.
        with warehouse.connect(read_only=False) as con:
            model_loads.forget(con)
    with keyring.open() as cipher, warehouse.connect(read_only=False, changing=GOVERNED_TABLES) as con:
        report = process_pending(con, cipher, inbox, privacy.audit(cipher), exports_dir=Path(privacy.exports_dir),
                                 landing_urls=privacy.landing_urls, derived_tables=DERIVED_TABLES,
                                 publish=lambda: _republish(con, snapshot),  # the analysts' copy forgets them too
                                 persist=lambda: write_back(con))  # on the lakehouse: in its files before closing
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


def _republish(con, snapshot: Path) -> None:
    """Publish the analysts' snapshot again from `con`, once there is one (the first analytics build makes it)."""
    if snapshot.exists():
        publish_snapshot(con, snapshot)


def _snapshot_past_retention(rule: Rule, snapshot: Path, now: dt.datetime) -> int:
    """Records of a model's rule that the analysts' snapshot still holds past retention (0 without one)."""
    if rule.table not in DERIVED_TABLES or not snapshot.exists():
        return 0
    with duckdb.connect(str(snapshot), read_only=True) as copy:
        return past_retention(copy, rule, now, DERIVED_TABLES)


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
def audit_log_intact(context: AssetCheckExecutionContext, privacy: PrivacyResource,
                     keyring: KeyringResource) -> AssetCheckResult:
    with keyring.open() as cipher:
        status = privacy.audit(cipher).verify()
    return AssetCheckResult(passed=status.intact,
                            metadata={"entries": status.entries, "broken_at_entry": status.broken_at or 0})


@asset_check(asset=REQUESTS_KEY, description="Every access export on disk holds only rows of the workspace that "
             "requested it (\"visible only within your personal workspace\").")
def exports_hold_only_their_workspace(context: AssetCheckExecutionContext, privacy: PrivacyResource) -> AssetCheckResult:
    read, foreign = foreign_rows_in_exports(privacy.inbox(), Path(privacy.exports_dir))
    return AssetCheckResult(passed=not foreign, severity=AssetCheckSeverity.ERROR, metadata={
        "exports_read": read, "rows_of_another_workspace": sum(foreign.values()),
        "requests_with_foreign_rows": MetadataValue.json(sorted(foreign))})


REQUEST_CHECKS = [requests_within_deadline, audit_log_intact, exports_hold_only_their_workspace]

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
