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
                       resources=privacy_resources(platform))


def _config(defs: Definitions, **retention) -> dict:
    nodes = defs.resolve_job_def("privacy_retention_job").graph.node_names()
    return {"ops": {n: {"config": retention if n.startswith("privacy__retention__") else {"as_of": AS_OF}} for n in nodes}}


def _digests(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def loaded(platform: Platform) -> Platform:
    platform.generate()
    platform.ingest()
    return platform


def test_as_of_alone_previews_and_writes_nothing(loaded: Platform) -> None:
    defs = _defs(loaded)
    before = _digests(loaded.root)
    events = loaded.query("SELECT count(*) FROM raw_events.usage_events")[0][0]
    result = defs.resolve_job_def("privacy_retention_job").execute_in_process(
        instance=DagsterInstance.ephemeral(), run_config=_config(defs, as_of=AS_OF), raise_on_error=False)
    previews = {e.asset_key.path[-1]: e.materialization.metadata for e in result.get_asset_materialization_events()}
    assert set(previews) == {rule.name for rule in POLICY.rules}
    assert {name: meta["preview"].value for name, meta in previews.items()} == dict.fromkeys(previews, True)
    assert previews["usage_events"]["rows_that_would_expire"].value == events > 0
    assert _digests(loaded.root) == before  # warehouse, keyring, audit log: byte for byte
    assert not (loaded.root / "privacy" / "audit.jsonl").exists()


def test_enforcing_at_another_moment_needs_the_confirmation_repeated(loaded: Platform) -> None:
    defs = _defs(loaded)
    before = _digests(loaded.root)
    wrong = defs.resolve_job_def("privacy_retention_job").execute_in_process(
        instance=DagsterInstance.ephemeral(), run_config=_config(defs, as_of=AS_OF, confirm_as_of=AS_OF[:10]),
        raise_on_error=False)
    assert not wrong.success
    errors = {str(e.step_failure_data.error.cause or e.step_failure_data.error) for e in wrong.get_step_failure_events()}
    assert errors and all("confirm_as_of must repeat as_of exactly" in e for e in errors)
    assert _digests(loaded.root) == before

    confirmed = defs.resolve_job_def("privacy_retention_job").execute_in_process(
        instance=DagsterInstance.ephemeral(), run_config=_config(defs, as_of=AS_OF, confirm_as_of=AS_OF))
    assert confirmed.success
    assert loaded.query("SELECT count(subject_ref) FROM raw_events.usage_events")[0][0] == 0
