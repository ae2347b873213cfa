"""The Meta assets in Dagster, run in process against the sandbox the resource starts: one partition per ad
account, counts in the metadata, every check beside the assets passing, and a refused token failing the run
with "needs re-authorisation" and leaving the schedule."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest
from dagster import DagsterInstance, Definitions
from dagster_dlt import DagsterDltResource

from assets.facebook_ads import FACEBOOK_ASSETS, FACEBOOK_CHECKS, FACEBOOK_CONNECTIONS, FACEBOOK_PROVIDER, facebook_job
from pipelines.facebook.insights import RESUME_KEY
from resources.connections import ConnectionsResource
from resources.facebook import FacebookResource
from resources.keyring import KeyringResource
from resources.warehouse import WarehouseResource

WEST, TOKYO = "ws_0001-facebook_ads-0", "ws_0001-facebook_ads-1"
DAYS = 10


@pytest.fixture
def platform(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("GTG_SANDBOX_FACEBOOK_DAYS", str(DAYS))
    root = tmp_path / "data"
    resources = {
        "dlt_runner": DagsterDltResource(),
        "warehouse": WarehouseResource(path=str(root / "warehouse.duckdb"), dlt_dir=str(root / "dlt"),
                                       work_dir=str(root / "work")),
        "keyring": KeyringResource(master_key_file=str(root / "keys" / "master.key"),
                                   keyring_path=str(root / "keys" / "keyring.sqlite")),
        "connections": ConnectionsResource(connections_path=str(root / "connections" / "connections.sqlite")),
        "facebook_ads": FacebookResource(sandbox=True),
    }
    with resources["keyring"].open() as cipher:
        FACEBOOK_PROVIDER.seed_sandbox(resources["connections"].registry(), cipher)
    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(FACEBOOK_CONNECTIONS.name, [WEST, TOKYO])
    defs = Definitions(assets=FACEBOOK_ASSETS, asset_checks=FACEBOOK_CHECKS, jobs=[facebook_job], resources=resources)
    return defs, instance, resources


def _run(platform, partition: str):
    defs, instance, _ = platform
    return defs.resolve_job_def(facebook_job.name).execute_in_process(instance=instance, partition_key=partition,
                                                                    raise_on_error=False)


def test_a_partition_syncs_one_ad_account_with_counts_and_passing_checks(platform) -> None:
    result = _run(platform, WEST)
    assert result.success
    metadata = {e.asset_key.path[-1]: {k: v.value for k, v in e.materialization.metadata.items()}
                for e in result.get_asset_materialization_events()}
    assert set(metadata) == {"ad_accounts", "campaigns", "ad_sets", "ads", "ad_creatives", "ad_insights",
                             "lead_forms", "leads"}
    assert metadata["ad_insights"]["inserted"] == 12 * DAYS and metadata["ad_insights"]["full_resync"] is True
    assert metadata["leads"]["inserted"] == 12 and metadata["campaigns"]["inserted"] == 3
    assert metadata["ads"]["http_requests"] > 0 and metadata["ads"]["retries"] == 0
    checks = result.get_asset_check_evaluations()
    assert len(checks) == len(FACEBOOK_CHECKS) == 18 and all(c.passed for c in checks)
    again = _run(platform, WEST)
    insights = next(e for e in again.get_asset_materialization_events() if e.asset_key.path[-1] == "ad_insights")
    assert insights.materialization.metadata["updated"].value == 12 * DAYS  # the 28-day lookback covers all 10


def test_a_big_sync_loads_one_piece_per_run_and_the_next_runs_go_on(platform, monkeypatch: pytest.MonkeyPatch) -> None:
    defs, instance, resources = platform
    monkeypatch.setenv("GTG_SANDBOX_FACEBOOK_DAYS", "40")
    # 96 rows a piece: 12 ads make 8-day slices, and a run ends after the slices that reach 96 rows.
    defs = Definitions(assets=FACEBOOK_ASSETS, asset_checks=FACEBOOK_CHECKS, jobs=[facebook_job],
                       resources={**resources, "facebook_ads": FacebookResource(sandbox=True, piece_rows=96)})
    piece, registry = (defs, instance, resources), resources["connections"].registry()
    inserted = []
    while not inserted or registry.get(WEST).sync_state.get(RESUME_KEY):
        resume = registry.get(WEST).sync_state.get(RESUME_KEY)
        result = _run(piece, WEST)
        assert result.success and len(inserted) < 6
        inserted.append(_insights_inserted(result))
        state = registry.get(WEST).sync_state
        if state.get(RESUME_KEY):
            assert "insights_until" not in state and state[RESUME_KEY] != resume
            assert any(f"next run goes on from {state[RESUME_KEY]}" in (e.message or "")
                       for e in instance.all_logs(result.run_id))
    assert len(inserted) >= 2 and all(0 < n <= 96 + 96 for n in inserted) and sum(inserted) == 12 * 40
    assert registry.get(WEST).sync_state["insights_until"]
    with duckdb.connect(resources["warehouse"].path, read_only=True) as con:
        assert con.execute("SELECT count(*), count(DISTINCT insight_id) FROM raw_facebook_ads.ad_insights "
                           "WHERE connection_id = ?", [WEST]).fetchone() == (12 * 40, 12 * 40)


def _insights_inserted(result) -> int:
    return next(e.materialization.metadata["inserted"].value for e in result.get_asset_materialization_events()
                if e.asset_key.path[-1] == "ad_insights")


def test_a_sync_counts_each_tables_rows_and_documents_its_columns(platform) -> None:
    """Through the shared `load`: each materialisation carries the rows its partition loaded, and the declared
    columns are DuckDB comments once loaded."""
    result = _run(platform, WEST)
    assert result.success
    loaded = {e.asset_key.path[-1]: e.materialization.metadata["dagster/partition_row_count"].value
              for e in result.get_asset_materialization_events()}
    assert loaded == {"ad_accounts": 1, "campaigns": 3, "ad_sets": 6, "ads": 12, "ad_creatives": 12,
                      "ad_insights": 12 * DAYS, "lead_forms": 2, "leads": 12}
    _, _, resources = platform
    with duckdb.connect(resources["warehouse"].path, read_only=True) as con:
        comments = dict(con.execute("SELECT column_name, comment FROM duckdb_columns() WHERE schema_name = "
                                    "'raw_facebook_ads' AND table_name = 'leads' AND comment IS NOT NULL").fetchall())
    assert comments == {
        "connection_id": "The connected account the row was synced from.",
        "lead_id": "The provider's id of the record.",
        "workspace_id": "The GTG workspace of the account.",
        "subject_ref": "Reference of the person (email, phone_number) whose key encrypts the row.",
        "email": "Personal data (user.contact.email), stored encrypted.",
        "email_bidx": "Blind index (keyed hash) of email: joins and counts without the value.",
        "full_name": "Personal data (user.name), stored encrypted.",
        "phone_number": "Personal data (user.contact.phone_number), stored encrypted.",
        "phone_number_bidx": "Blind index (keyed hash) of phone_number: joins and counts without the value.",
        "answers": "Personal data (user.content.form_answer), stored encrypted.",
        "synced_at": "When the sync wrote the row.",
        "_deleted": "Deletion marker of a sync (the row is removed on load).",
    }


def test_a_refused_token_fails_the_run_as_needing_reauthorisation(platform) -> None:
    _, _, resources = platform
    registry = resources["connections"].registry()
    with resources["keyring"].open() as cipher:
        registry.reauthorise(cipher, TOKYO, None, "a-token-meta-no-longer-accepts")
    result = _run(platform, TOKYO)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert "needs re-authorisation" in failure.event_specific_data.error.message
    assert "a-token-meta-no-longer-accepts" not in failure.event_specific_data.error.message
    assert registry.get(TOKYO).status == "needs_reauth"
    assert [c.connection_id for c in registry.list("facebook_ads")] == [WEST, "ws_0002-facebook_ads-2"]
