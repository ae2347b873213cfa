"""Retention's `as_of` run option through Dagster, as anyone who can launch a run in the UI would set it: alone
it previews (counts, writes nothing); enforcing at another moment needs `confirm_as_of` repeating it."""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

import pytest
from dagster import DagsterInstance, Definitions

from assets.privacy import POLICY, PRIVACY_ASSETS, PRIVACY_CHECKS, retention_job
from tests.conftest import END_DATE, Platform
from tests.security.conftest import privacy_resources

# Far in the future: at this moment every generated event is past its retention.
AS_OF = (dt.datetime.combine(END_DATE, dt.time(12), dt.timezone.utc) + dt.timedelta(days=2000)).isoformat()


def _defs(platform: Platform) -> Definitions:
    return Definitions(assets=PRIVACY_ASSETS, asset_checks=PRIVACY_CHECKS, jobs=[retention_job],
                       resources=privacy_resources(platform, landing=True))


def _config(defs: Definitions, **retention) -> dict:
    nodes = defs.resolve_job_def("privacy_retention_job").graph.node_names()
    return {"ops": {n: {"config": retention if _enforces(n) else {"as_of": AS_OF}} for n in nodes}}


def _enforces(node: str) -> bool:
    """A retention asset's node (the landed lifecycle's check is named after its asset, but only reads)."""
    return node.startswith("privacy__retention__") and "within_retention" not in node


def _digests(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


def test_as_of_alone_previews_and_writes_nothing(generated: Platform) -> None:
    defs = _defs(generated)
    before = _digests(generated.root)
    events = generated.query("SELECT count(*) FROM raw_events.usage_events")[0][0]
    result = defs.resolve_job_def("privacy_retention_job").execute_in_process(
        instance=DagsterInstance.ephemeral(), run_config=_config(defs, as_of=AS_OF), raise_on_error=False)
    previews = {tuple(e.asset_key.path[2:]): e.materialization.metadata for e in result.get_asset_materialization_events()}
    assert set(previews) == {(r.dataset, f"{r.action}_{r.name}") for r in POLICY.rules} | {
        ("landed", f"{r.action}_{r.zone}_files") for r in POLICY.landed}
    assert {name: meta["preview"].value for name, meta in previews.items()} == dict.fromkeys(previews, True)
    assert previews[("raw_events", "anonymise_usage_events")]["rows_that_would_expire"].value == events > 0
    landed = previews[("landed", "archive_usage_events_files")]  # every file is loaded and past its window: none moves
    assert landed["files_that_would_leave_the_clear"].value == len(list(generated.landing.rglob("*.ndjson*"))) > 0
    assert _digests(generated.root) == before  # warehouse, keyring, audit log, landed files: byte for byte
    assert not (generated.root / "privacy" / "audit.jsonl").exists()


def test_enforcing_at_another_moment_needs_the_confirmation_repeated(generated: Platform) -> None:
    defs = _defs(generated)
    before = _digests(generated.root)
    wrong = defs.resolve_job_def("privacy_retention_job").execute_in_process(
        instance=DagsterInstance.ephemeral(), run_config=_config(defs, as_of=AS_OF, confirm_as_of=AS_OF[:10]),
        raise_on_error=False)
    assert not wrong.success
    errors = {str(e.step_failure_data.error.cause or e.step_failure_data.error) for e in wrong.get_step_failure_events()}
    assert errors and all("confirm_as_of must repeat as_of exactly" in e for e in errors)
    assert _digests(generated.root) == before

    confirmed = defs.resolve_job_def("privacy_retention_job").execute_in_process(
        instance=DagsterInstance.ephemeral(), run_config=_config(defs, as_of=AS_OF, confirm_as_of=AS_OF))
    assert confirmed.success
    assert generated.query("SELECT count(subject_ref) FROM raw_events.usage_events")[0][0] == 0
    assert list(generated.landing.rglob("*.ndjson*")) == []  # confirmed: the loaded files left the clear
