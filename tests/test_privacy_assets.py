"""The privacy assets in Dagster: the retention job and its checks, the request sensor and batch, and no
personal data in Dagster's own storage after an erasure."""

from __future__ import annotations

import datetime as dt
import tempfile
from collections import Counter
from pathlib import Path

import pytest
from dagster import AssetSelection, DagsterInstance, Definitions, RunRequest, build_sensor_context, define_asset_job

from assets.analytics import ANALYTICS_ASSETS, analytics_job
from assets.privacy import (
    POLICY,
    PRIVACY_ASSETS,
    PRIVACY_CHECKS,
    RETENTION_CHECKS,
    data_subject_request_sensor,
    requests_job,
    retention_job,
)
from pipelines.privacy.audit import AuditLog
from pipelines.privacy.requests import Request
from resources.keyring import KeyringResource
from resources.privacy import PrivacyResource
from resources.warehouse import WarehouseResource
from tests.conftest import END_DATE, Platform, landed_lines
from tests.privacy.test_requests import _files_containing
from tests.security.test_retention_preview import _enforces

AS_OF = (dt.datetime.combine(END_DATE, dt.time(12), dt.timezone.utc) + dt.timedelta(days=394)).isoformat()
checks_only_job = define_asset_job("retention_checks_only", selection=AssetSelection.checks(*RETENTION_CHECKS))


def _privacy(platform: Platform) -> PrivacyResource:
    return PrivacyResource(inbox_path=str(platform.root / "privacy" / "requests.sqlite"),
                           audit_path=str(platform.root / "privacy" / "audit.jsonl"),
                           exports_dir=str(platform.root / "exports"),
                           landing_urls={"usage_events": str(platform.landing)})


def _defs(platform: Platform) -> Definitions:
    return Definitions(
        assets=[*PRIVACY_ASSETS, *ANALYTICS_ASSETS],
        asset_checks=PRIVACY_CHECKS,
        jobs=[retention_job, requests_job, checks_only_job, analytics_job],
        sensors=[data_subject_request_sensor],
        resources={
            "warehouse": WarehouseResource(path=str(platform.warehouse), dlt_dir=str(platform.dlt_dir),
                                           work_dir=str(platform.work_dir)),
            "keyring": KeyringResource(master_key_file=str(platform.master_key_file),
                                       keyring_path=str(platform.keyring_path)),
            "privacy": _privacy(platform),
        },
    )


def _as_of(job_name: str, defs: Definitions, confirm: bool = True) -> dict:
    """Every retention asset and check evaluated at AS_OF; the assets really enforce only if `confirm`."""
    nodes = defs.resolve_job_def(job_name).graph.node_names()
    enforce = {"as_of": AS_OF, **({"confirm_as_of": AS_OF} if confirm else {})}
    return {"ops": {node: {"config": enforce if _enforces(node) else {"as_of": AS_OF}}
                    for node in nodes if node != "privacy__data_subject_requests"}}


def test_checks_fail_on_expired_records_until_the_retention_job_runs(generated: Platform) -> None:
    defs = _defs(generated)
    instance = DagsterInstance.ephemeral()
    assert defs.resolve_job_def("analytics_job").execute_in_process(instance=instance).success
    before = defs.resolve_job_def("retention_checks_only").execute_in_process(
        instance=instance, run_config=_as_of("retention_checks_only", defs), raise_on_error=False)
    failing = {e.check_name: e.metadata["records_past_retention"].value for e in before.get_asset_check_evaluations()
               if "records_past_retention" in e.metadata}
    landed = {e.check_name: e.metadata["files_in_clear_past_window"].value for e in before.get_asset_check_evaluations()
              if e.check_name.startswith("within_retention__landed_")}
    assert landed == {"within_retention__landed_usage_events": len(list(generated.landing.rglob("*.ndjson*")))}
    cutoff_day = dt.date.fromisoformat(AS_OF[:10]) - dt.timedelta(days=395)
    expected = {
        "usage_events_quarantine": generated.query(
            "SELECT count(*) FROM raw_events.usage_events_quarantine WHERE received_date < ?",
            [dt.date.fromisoformat(AS_OF[:10]) - dt.timedelta(days=30)])[0][0],
        "sessions": generated.query("SELECT count(*) FROM analytics.sessions WHERE session_date < ?", [cutoff_day])[0][0],
        "visitor_days": generated.query("SELECT count(*) FROM analytics.visitor_days WHERE event_date < ?", [cutoff_day])[0][0],
    }
    assert {k: failing[f"within_retention__{k}"] for k in expected} == expected and all(expected.values())
    assert failing["within_retention__usage_events"] > 0

    result = defs.resolve_job_def("privacy_retention_job").execute_in_process(
        instance=instance, run_config=_as_of("privacy_retention_job", defs))
    assert result.success
    # Retention assets are named `<action>_<table>` (`anonymise_usage_events`).
    meta = {e.asset_key.path[-1].split("_", 1)[1]: e.materialization.metadata["rows_expired"].value
            for e in result.get_asset_materialization_events() if e.asset_key.path[2] != "landed"}
    providers = {rule.name for rule in POLICY.rules  # sources this platform has not loaded: nothing expired
                 if not rule.dataset.startswith(("raw_events", "analytics", "staging"))}
    assert meta == {**expected, "usage_events": failing["within_retention__usage_events"], **dict.fromkeys(providers, 0)}
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks == {**{f"within_retention__{rule.name}": True for rule in POLICY.rules},  # provider tables: none loaded
                      "within_retention__landed_usage_events": True}
    assert list(generated.landing.rglob("*.ndjson*")) == []  # every loaded file archived
    # The models' old rows keep their aggregates and lose the visitor's key.
    assert generated.query("SELECT count(*), count(visitor_key), sum(page_views) > 0 FROM analytics.sessions "
                        "WHERE session_date < ?", [cutoff_day]) == [(expected["sessions"], 0, True)]
    with generated.keyring() as cipher:
        audit = AuditLog.of(generated.root / "privacy" / "audit.jsonl", cipher)
    assert len(audit.entries()) == len(POLICY.rules) + len(POLICY.landed) and audit.verify().intact


def test_sensor_starts_a_batch_and_an_erasure_leaves_dagster_storage_clean(generated: Platform) -> None:
    counts = Counter((r.get("workspace_id"), r.get("user_id")) for r in landed_lines(generated.landing)
                     if isinstance(r.get("user_id"), str))
    (ws, user_id), _ = counts.most_common(1)[0]
    defs = _defs(generated)
    privacy = _privacy(generated)
    with tempfile.TemporaryDirectory() as home:
        instance = DagsterInstance.local_temp(home)
        context = build_sensor_context(instance=instance, resources={"privacy": privacy})
        assert data_subject_request_sensor(context).skip_message == "no pending data-subject requests"
        inbox = privacy.inbox()
        erasure = inbox.submit(Request("erasure", ws, "user_id", user_id, requested_by="dpo@gtgcrm.test"))
        bad = inbox.submit(Request("access", "ws_unknown", "user_id", user_id))
        run_request = data_subject_request_sensor(build_sensor_context(instance=instance, resources={"privacy": privacy}))
        assert isinstance(run_request, RunRequest) and run_request.tags["privacy/pending_requests"] == "2"

        result = defs.resolve_job_def("data_subject_requests_job").execute_in_process(instance=instance)
        assert result.success
        (materialization,) = result.get_asset_materialization_events()
        meta = materialization.materialization.metadata
        assert (meta["requests_completed"].value, meta["requests_rejected"].value) == (1, 1)
        assert erasure in meta["requests"].value and "rejected" in meta["requests"].value
        assert {e.check_name: e.passed for e in result.get_asset_check_evaluations()} == {
            "requests_within_deadline": True, "audit_log_intact": True, "exports_hold_only_their_workspace": True}
        assert (inbox.get(erasure)["status"], inbox.get(bad)["status"]) == ("completed", "rejected")
        assert _files_containing(Path(home), {user_id}) == {}
        assert _files_containing(generated.root, {user_id}) == {}
