"""The Dagster layer over the events source: partitions, backfills, checks, the sensor, fail-fast keys."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from dagster import DagsterInstance, Definitions, SkipReason, build_sensor_context
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
                                                  keyring_path=str(platform.keyring_path)),
            "landing": _landing(platform),
        },
    )


def _landing(platform: Platform) -> LandingResource:
    return LandingResource(url=str(platform.landing), workspaces_path=str(platform.workspaces_path),
                           connections_path=str(platform.connections_path))


def _run(platform: Platform, day: str, keyring: KeyringResource | None = None):
    job = _defs(platform, keyring).resolve_job_def("usage_events_job")
    return job.execute_in_process(instance=DagsterInstance.ephemeral(), partition_key=day, raise_on_error=False)


def _sense(resources: dict):
    """Evaluate the landing sensor as the daemon does: its resources open (and close) around the evaluation."""
    with build_sensor_context(resources=resources) as context:
        return usage_events_landing_sensor(context)


DAYS = ["2026-11-22", "2026-11-23", "2026-11-24"]
COUNTS = ("lines_read", "events_loaded", "duplicates_dropped", "lines_quarantined")


def test_each_day_materialises_with_its_exact_counts_and_passing_checks(platform: Platform) -> None:
    stats = platform.generate()
    results = [_run(platform, day) for day in DAYS]

    assert all(r.success for r in results)
    for day, result in zip(DAYS, results):
        (materialization,) = result.get_asset_materialization_events()
        assert materialization.partition == day
        meta = materialization.materialization.metadata
        assert {k: meta[k].value for k in COUNTS} == {
            "lines_read": stats.lines_by_day[day], "events_loaded": stats.valid_by_day[day],
            "duplicates_dropped": stats.duplicates_by_day[day], "lines_quarantined": stats.bad_by_day[day]}
        checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
        assert checks == {"events_unique_event_ids": True, "events_quarantine_share": True,
                          "events_personal_data_encrypted": True, "events_landed_files_unchanged": True,
                          "events_opted_out_without_identifiers": True}
    assert platform.query("SELECT count(*) FROM raw_events.usage_events") == [(stats.valid_events,)]

    # No personal value anywhere in what Dagster recorded about the runs.
    recorded = json.dumps([str(m.materialization.metadata) for r in results for m in r.get_asset_materialization_events()])
    recorded += json.dumps([str(e.metadata) for r in results for e in r.get_asset_check_evaluations()])
    personal = {row[k] for row in landed_lines(platform.landing) for k in ("user_id", "anonymous_id", "ip")
                if isinstance(row.get(k), str) and len(row[k]) > 6}
    assert personal and not [v for v in personal if v in recorded]


def test_rematerialising_a_day_loads_nothing_twice(platform: Platform) -> None:
    platform.generate()
    assert _run(platform, "2026-11-24").success
    before = platform.query("SELECT count(*) FROM raw_events.usage_events")
    again = _run(platform, "2026-11-24")
    meta = again.get_asset_materialization_events()[0].materialization.metadata
    assert (meta["files_read"].value, meta["events_loaded"].value) == (0, 0)
    assert platform.query("SELECT count(*) FROM raw_events.usage_events") == before


def test_a_wrong_master_key_stops_the_run_before_anything_is_written(platform: Platform) -> None:
    platform.generate()
    assert _run(platform, "2026-11-22").success
    warehouse_bytes = platform.warehouse.read_bytes()
    keyring_bytes = platform.keyring_path.read_bytes()

    wrong = KeyringResource(master_key=generate_master_key_text(), keyring_path=str(platform.keyring_path))
    result = _run(platform, "2026-11-23", keyring=wrong)

    assert not result.success
    failure = result.get_step_failure_events()[0].step_failure_data.error
    assert "master key does not match the keyring" in str(failure)
    assert platform.warehouse.read_bytes() == warehouse_bytes
    assert platform.keyring_path.read_bytes() == keyring_bytes


def test_a_missing_master_key_outside_the_sandbox_is_a_clear_error(platform: Platform, monkeypatch) -> None:
    platform.generate()
    monkeypatch.setenv("GTG_ENV", "production")
    missing = KeyringResource(master_key_file=str(platform.root / "nowhere" / "master.key"),
                              keyring_path=str(platform.keyring_path))
    result = _run(platform, "2026-11-24", keyring=missing)
    assert not result.success
    assert "master.key" in str(result.get_step_failure_events()[0].step_failure_data.error)
    assert not platform.warehouse.exists()


def test_quarantine_share_check_flags_a_bad_load(platform: Platform) -> None:
    stats = platform.generate(bad_share=0.2)
    result = _run(platform, "2026-11-24")
    share = {e.check_name: e for e in result.get_asset_check_evaluations()}["events_quarantine_share"]
    assert not share.passed
    assert share.metadata["lines_quarantined"].value == stats.bad_by_day["2026-11-24"]
    assert share.metadata["lines"].value == stats.lines_by_day["2026-11-24"]


def test_sensor_requests_each_day_with_unloaded_files(platform: Platform) -> None:
    platform.generate()
    resources = {"landing": _landing(platform),
                 "warehouse": WarehouseResource(path=str(platform.warehouse))}
    first = _sense(resources)
    assert sorted(r.partition_key for r in first) == DAYS
    # The run key names the day's pending files: the same files are requested once, new files again.
    assert len({r.run_key for r in first}) == 3

    assert _run(platform, "2026-11-23").success
    second = _sense(resources)
    assert sorted(r.partition_key for r in second) == ["2026-11-22", "2026-11-24"]

    for day in ("2026-11-22", "2026-11-24"):
        assert _run(platform, day).success
    assert isinstance(_sense(resources), SkipReason)

    (platform.landing / "dt=2026-11-23" / "extra.ndjson").write_text("{}\n")
    (late,) = _sense(resources)
    assert late.partition_key == "2026-11-23" and late.run_key not in {r.run_key for r in first}


# A writer of the platform (holding the warehouse lock), and a program that opens the file without it.
WRITERS = {
    "platform": "import sys, time\nfrom pipelines.warehouse import warehouse_lock\n"
                "with warehouse_lock(sys.argv[1], 'a test writer'):\n    print('locked', flush=True); time.sleep(30)\n",
    "foreign": "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('locked', flush=True); time.sleep(30)",
}


@pytest.mark.parametrize("writer_kind", sorted(WRITERS))
def test_sensor_waits_while_the_warehouse_is_being_written(platform: Platform, writer_kind: str) -> None:
    platform.generate()
    assert _run(platform, "2026-11-22").success
    resources = {"landing": _landing(platform),
                 "warehouse": WarehouseResource(path=str(platform.warehouse))}
    writer = subprocess.Popen([sys.executable, "-c", WRITERS[writer_kind], str(platform.warehouse)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline().strip() == "locked"
        result = _sense(resources)
    finally:
        writer.kill()
        writer.wait()
    holder = (f"pid {writer.pid} (a test writer, since " if writer_kind == "platform"
              else f"another program (pid {writer.pid})")
    assert isinstance(result, SkipReason)
    assert result.skip_message.startswith(f"the warehouse is being written by {holder}"), result.skip_message
    assert result.skip_message.endswith("; looking again at the next tick")


@pytest.mark.parametrize("name", ["events_unique_event_ids", "events_quarantine_share", "events_personal_data_encrypted",
                                  "events_landed_files_unchanged", "events_opted_out_without_identifiers"])
def test_checks_pass_on_an_empty_warehouse(platform: Platform, name: str) -> None:
    result = _run(platform, "2026-11-24")
    assert result.success
    assert {e.check_name: e.passed for e in result.get_asset_check_evaluations()}[name] is True


def test_the_stored_schema_carries_the_declaration_and_the_check_catches_plaintext(platform: Platform) -> None:
    import duckdb

    from pipelines.privacy.categories import stored_tables

    platform.generate()
    assert _run(platform, "2026-11-24").success
    with duckdb.connect(str(platform.warehouse), read_only=True) as con:
        tables = stored_tables(con, "raw_events")
    categories = {name: col.get("x-data-category") for name, col in tables["usage_events"].items()
                  if col.get("x-data-category")}
    assert categories == {"user_id": "user.unique_id", "anonymous_id": "user.device.cookie_id",
                          "device_id": "user.device.device_id", "ip": "user.device.ip_address",
                          "user_agent": "user.device.user_agent"}
    assert tables["usage_events_quarantine"]["raw_line"]["x-data-category"] == "user.content.raw_event"

    # A plaintext value slipped into a personal column (here by hand) fails the check, naming the column.
    with duckdb.connect(str(platform.warehouse)) as con:
        con.execute("UPDATE raw_events.usage_events SET ip = encode('203.0.113.5') "
                    "WHERE event_id = (SELECT min(event_id) FROM raw_events.usage_events WHERE ip IS NOT NULL)")
    result = _run(platform, "2026-11-24")
    check = {e.check_name: e for e in result.get_asset_check_evaluations()}["events_personal_data_encrypted"]
    assert not check.passed
    assert check.metadata["readable_values"].value["usage_events.ip"] == 1
    assert sum(check.metadata["readable_values"].value.values()) == 1
