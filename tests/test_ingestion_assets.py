"""The Dagster layer over the events source: partitions, backfills, checks, the sensor, fail-fast keys."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from dagster import DagsterInstance, Definitions, SkipReason, build_sensor_context
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG
from dagster_dlt import DagsterDltResource

from assets.ingestion import EVENT_CHECKS, usage_events_assets, usage_events_job, usage_events_landing_sensor
from pipelines.privacy.keyring import generate_master_key_text
from resources.keyring import KeyringResource
from resources.landing import LandingResource
from resources.warehouse import WarehouseResource
from tests.conftest import Platform, landed_lines


def _defs(platform: Platform, keyring: KeyringResource | None = None) -> Definitions:
    return Definitions(
        assets=[usage_events_assets],
        asset_checks=EVENT_CHECKS,
        jobs=[usage_events_job],
        resources={
            "dlt_runner": DagsterDltResource(),
            "warehouse": WarehouseResource(path=str(platform.warehouse), dlt_dir=str(platform.dlt_dir),
                                           work_dir=str(platform.work_dir)),
            "keyring": keyring or KeyringResource(master_key_file=str(platform.master_key_file),
                                                  keyring_path=str(platform.keyring_path), create_key_if_missing=True),
            "landing": LandingResource(url=str(platform.landing)),
        },
    )


def _run(platform: Platform, first: str, last: str, keyring: KeyringResource | None = None):
    job = _defs(platform, keyring).resolve_job_def("usage_events_job")
    return job.execute_in_process(
        instance=DagsterInstance.ephemeral(),
        tags={ASSET_PARTITION_RANGE_START_TAG: first, ASSET_PARTITION_RANGE_END_TAG: last},
        raise_on_error=False,
    )


def test_backfill_of_a_day_range_runs_once_with_exact_metadata_and_passing_checks(platform: Platform) -> None:
    stats = platform.generate()
    result = _run(platform, "2026-11-22", "2026-11-24")

    assert result.success
    materializations = result.get_asset_materialization_events()
    assert sorted(m.partition for m in materializations) == ["2026-11-22", "2026-11-23", "2026-11-24"]
    meta = materializations[0].materialization.metadata
    assert {k: meta[k].value for k in ("lines_read", "events_loaded", "duplicates_dropped", "lines_quarantined")} == {
        "lines_read": stats.lines, "events_loaded": stats.valid_events,
        "duplicates_dropped": stats.duplicate_lines, "lines_quarantined": stats.bad_lines}
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks == {"events_unique_event_ids": True, "events_quarantine_share": True,
                      "events_personal_data_encrypted": True}

    # No personal value anywhere in what Dagster recorded about the run.
    recorded = json.dumps([str(m.materialization.metadata) for m in materializations]) + json.dumps(
        [str(e.metadata) for e in result.get_asset_check_evaluations()])
    personal = {row[k] for row in landed_lines(platform.landing) for k in ("user_id", "anonymous_id", "ip")
                if isinstance(row.get(k), str) and len(row[k]) > 6}
    assert personal and not [v for v in personal if v in recorded]


def test_rematerialising_a_day_loads_nothing_twice(platform: Platform) -> None:
    platform.generate()
    assert _run(platform, "2026-11-24", "2026-11-24").success
    before = platform.query("SELECT count(*) FROM raw_events.usage_events")
    again = _run(platform, "2026-11-24", "2026-11-24")
    meta = again.get_asset_materialization_events()[0].materialization.metadata
    assert (meta["files_read"].value, meta["events_loaded"].value) == (0, 0)
    assert platform.query("SELECT count(*) FROM raw_events.usage_events") == before


def test_a_wrong_master_key_stops_the_run_before_anything_is_written(platform: Platform) -> None:
    platform.generate()
    assert _run(platform, "2026-11-22", "2026-11-22").success
    warehouse_bytes = platform.warehouse.read_bytes()
    keyring_bytes = platform.keyring_path.read_bytes()

    wrong = KeyringResource(master_key=generate_master_key_text(), keyring_path=str(platform.keyring_path))
    result = _run(platform, "2026-11-23", "2026-11-24", keyring=wrong)

    assert not result.success
    failure = result.get_step_failure_events()[0].step_failure_data.error
    assert "master key does not match the keyring" in str(failure)
    assert platform.warehouse.read_bytes() == warehouse_bytes
    assert platform.keyring_path.read_bytes() == keyring_bytes


def test_a_missing_master_key_outside_the_sandbox_is_a_clear_error(platform: Platform) -> None:
    platform.generate()
    missing = KeyringResource(master_key_file=str(platform.root / "nowhere" / "master.key"),
                              keyring_path=str(platform.keyring_path), create_key_if_missing=False)
    result = _run(platform, "2026-11-24", "2026-11-24", keyring=missing)
    assert not result.success
    assert "master.key" in str(result.get_step_failure_events()[0].step_failure_data.error)
    assert not platform.warehouse.exists()


def test_quarantine_share_check_flags_a_bad_load(platform: Platform) -> None:
    platform.generate(bad_share=0.2)
    result = _run(platform, "2026-11-22", "2026-11-24")
    share = {e.check_name: e for e in result.get_asset_check_evaluations()}["events_quarantine_share"]
    assert not share.passed
    assert share.metadata["lines_quarantined"].value == 800 and share.metadata["lines"].value == 4000


def test_sensor_requests_each_changed_day_once(platform: Platform) -> None:
    platform.generate()
    landing = LandingResource(url=str(platform.landing))
    first = usage_events_landing_sensor(build_sensor_context(resources={"landing": landing}))
    assert sorted(r.partition_key for r in first) == ["2026-11-22", "2026-11-23", "2026-11-24"]

    context = build_sensor_context(resources={"landing": landing}, cursor=_cursor_after(landing))
    assert isinstance(usage_events_landing_sensor(context), SkipReason)

    (platform.landing / "dt=2026-11-23" / "extra.ndjson").write_text("{}\n")
    context = build_sensor_context(resources={"landing": landing}, cursor=_cursor_after(landing, skip="extra"))
    requests = usage_events_landing_sensor(context)
    assert [r.partition_key for r in requests] == ["2026-11-23"]


def _cursor_after(landing: LandingResource, skip: str | None = None) -> str:
    """The cursor the sensor leaves after seeing the landing location (optionally without one file)."""
    from assets.ingestion import _day_fingerprints
    from pipelines.usage_events.landing import discover_files

    if skip is None:
        return json.dumps(_day_fingerprints(landing.url), sort_keys=True)
    hidden = Path(landing.url) / "dt=2026-11-23" / "extra.ndjson"
    content = hidden.read_bytes()
    hidden.unlink()
    try:
        return json.dumps(_day_fingerprints(landing.url), sort_keys=True)
    finally:
        hidden.write_bytes(content)
        assert any(f.url.endswith("extra.ndjson") for f in discover_files(landing.url))


@pytest.mark.parametrize("name", ["events_unique_event_ids", "events_quarantine_share", "events_personal_data_encrypted"])
def test_checks_pass_on_an_empty_warehouse(platform: Platform, name: str) -> None:
    result = _run(platform, "2026-11-24", "2026-11-24")
    assert result.success
    assert {e.check_name: e.passed for e in result.get_asset_check_evaluations()}[name] is True
