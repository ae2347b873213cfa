"""The privacy policy, proven on one page: `privacy/policy_evidence` and its check.

The asset reads the latest result of every check `pipelines/privacy/policy_evidence.toml` names from the Dagster
instance and writes the verdict of each promise three times: a Markdown table in its materialisation (the UI),
the table `privacy.policy_evidence` (the warehouse), and a self-contained HTML page in the data folder
(`GTG_EVIDENCE_PAGE`) to hand to an auditor. It runs after everything else (`cli run` last, daily after the
night's retention run), so the checks it reads are the latest of the day.
"""

import datetime as dt
import os
from pathlib import Path

import pyarrow as pa
from dagster import (
    AssetCheckExecutionContext,
    AssetCheckKey,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetExecutionContext,
    AssetKey,
    AssetSelection,
    DefaultScheduleStatus,
    MaterializeResult,
    MetadataValue,
    ScheduleDefinition,
    asset,
    asset_check,
    define_asset_job,
)
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus

from pipelines import paths
from pipelines.privacy.evidence import BROKEN, KEPT, NOT_EVIDENCED, CheckResult, html_page, judge, load_promises, markdown, resolve, rows
from resources.warehouse import WAREHOUSE_POOL, WarehouseResource

EVIDENCE_KEY = AssetKey(["privacy", "policy_evidence"])
TABLE = "privacy.policy_evidence"
PROMISES = load_promises()  # a broken evidence file stops the definitions from loading, with its reason


def check_name(key: AssetCheckKey) -> str:
    """How the evidence file names a check: `<asset key path>:<check name>`."""
    return f"{key.asset_key.to_user_string()}:{key.name}"


def _existing() -> dict[str, AssetCheckKey]:
    """Every check of the code location, by evidence name (this asset's own check left out). Read from the one
    Definitions (which imports this module, so only at run time), the same whoever executes the run."""
    from definitions import defs

    keys = defs.resolve_asset_graph().asset_check_keys
    return {check_name(k): k for k in keys if k.asset_key != EVIDENCE_KEY}


def _latest(context: AssetExecutionContext, keys: dict[str, AssetCheckKey]) -> dict[str, CheckResult]:
    """The latest finished result of each check in the instance (a check planned but never run has none)."""
    records = context.instance.event_log_storage.get_latest_asset_check_execution_by_key(list(keys.values()))
    latest = {}
    for name, key in keys.items():
        record = records.get(key)
        if record is None or record.status not in (AssetCheckExecutionRecordStatus.SUCCEEDED,
                                                   AssetCheckExecutionRecordStatus.FAILED):
            continue
        latest[name] = CheckResult(name, record.status == AssetCheckExecutionRecordStatus.SUCCEEDED,
                                   dt.datetime.fromtimestamp(record.create_timestamp, dt.timezone.utc))
    return latest


@asset(
    key=EVIDENCE_KEY,
    group_name="privacy",
    kinds={"duckdb", "html", "python"},
    pool=WAREHOUSE_POOL,
    description="Each promise of the privacy policy, the checks that prove it, their latest results and a verdict "
    "(kept / broken / not yet evidenced): a table here, `privacy.policy_evidence` in the warehouse, and "
    "policy_evidence.html in the data folder for auditors.",
)
def policy_evidence(context: AssetExecutionContext, warehouse: WarehouseResource) -> MaterializeResult:
    existing = _existing()
    now = dt.datetime.now(dt.timezone.utc)
    findings = judge(PROMISES, existing, _latest(context, existing))
    with warehouse.connect(read_only=False) as con:
        con.register("evidence_rows", pa.Table.from_pylist(rows(findings, now)))
        con.execute("CREATE SCHEMA IF NOT EXISTS privacy")
        con.execute(f"CREATE OR REPLACE TABLE {TABLE} AS SELECT * FROM evidence_rows")
        con.execute(f"COMMENT ON TABLE {TABLE} IS 'Each privacy policy promise, its checks and verdict "
                    "(pipelines/privacy/policy_evidence.toml)'")
    page = paths.evidence_page_path()
    _write_atomically(page, html_page(findings, now))
    verdicts = {v: sum(f.verdict == v for f in findings) for v in (KEPT, BROKEN, NOT_EVIDENCED)}
    return MaterializeResult(metadata={
        "promises": len(findings), "kept": verdicts[KEPT], "broken": verdicts[BROKEN],
        "not_yet_evidenced": verdicts[NOT_EVIDENCED], "checks_read": len({r.name for f in findings for r in f.results}),
        "evidence": MetadataValue.md(markdown(findings)), "page": MetadataValue.path(str(page)),
        "dagster/row_count": len(findings),
    })


def _write_atomically(path: Path, text: str) -> None:
    """Write beside the target and rename over it: a reader never sees half a page."""
    paths.private_dir(path.parent)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, path)


@asset_check(
    asset=EVIDENCE_KEY,
    description="Every promise of the evidence file names at least one check (a warning while one is pending), "
    "and every check it names exists (an error otherwise).",
)
def every_promise_has_checks(context: AssetCheckExecutionContext) -> AssetCheckResult:
    resolved = resolve(PROMISES, _existing())
    unmatched = {pid: missing for pid, (_, missing) in resolved.items() if missing}
    unchecked = sorted(pid for pid, (found, missing) in resolved.items() if not found and not missing)
    return AssetCheckResult(
        passed=not unmatched and not unchecked,
        severity=AssetCheckSeverity.ERROR if unmatched else AssetCheckSeverity.WARN,
        metadata={"promises": len(PROMISES), "promises_without_checks": MetadataValue.json(unchecked),
                  "checks_that_do_not_exist": MetadataValue.json(unmatched)},
    )


EVIDENCE_CHECKS = [every_promise_has_checks]

evidence_job = define_asset_job(
    "policy_evidence_job",
    selection=AssetSelection.assets(policy_evidence) | AssetSelection.checks(*EVIDENCE_CHECKS),
    description="Read the latest result of every check the privacy policy's evidence names and write the verdicts.",
)

# After the night's retention run (02:30) and request batches, so the page reflects the day's proofs.
evidence_schedule = ScheduleDefinition(
    job=evidence_job, cron_schedule="0 4 * * *", execution_timezone="UTC", default_status=DefaultScheduleStatus.RUNNING,
)
