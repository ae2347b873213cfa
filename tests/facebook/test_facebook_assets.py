"""The Meta assets in Dagster, run in process against the sandbox the resource starts: one partition per ad
account, counts in the metadata, every check beside the assets passing, a refused token failing the run
with "needs re-authorisation" and leaving the schedule; and, on a sandbox server of the test's own, a big sync
loaded piece after piece in one run under Meta's own DuckDB memory cap, resuming after the last loaded piece
when a run dies between two."""

from __future__ import annotations

import datetime as dt
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import dlt
import duckdb
import pytest
from dagster import DagsterInstance, Definitions
from dagster_dlt import DagsterDltResource

from assets.facebook_ads import FACEBOOK_ASSETS, FACEBOOK_CHECKS, FACEBOOK_CONNECTIONS, FACEBOOK_PROVIDER, facebook_job
from pipelines.facebook import settings as facebook
from pipelines.facebook.client import GraphEndpoint
from pipelines.facebook.insights import RESUME_KEY
from pipelines.warehouse import LOAD_MEMORY_LIMIT
from resources.connections import ConnectionsResource
from resources.facebook import FacebookResource
from resources.keyring import KeyringResource
from resources.warehouse import WarehouseResource
from tests.facebook.conftest import DAYS as SERVED_DAYS
from tests.facebook.conftest import RAW, AdsPlatform, ads_platform, assert_mirror, expected_insights

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


class ServedFacebook(FacebookResource):
    """The resource pointed at a test's own sandbox server, whose accounts and fault switches the test holds."""

    url: str

    @contextmanager
    def endpoint(self) -> Iterator[GraphEndpoint]:
        yield GraphEndpoint(self.url)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[AdsPlatform, tuple]]:
    """Dagster on the test's sandbox (40 days of 12 ads an account, the real clock) with pieces of 96 insight
    rows: 12 ads make 8-day slices of at most 96 rows, and a piece ends after the slice that reaches 96."""
    with ads_platform(tmp_path / "data", None) as ads:
        resources = {
            "dlt_runner": DagsterDltResource(),
            "warehouse": WarehouseResource(path=str(ads.warehouse), dlt_dir=str(ads.dlt_dir),
                                           work_dir=str(ads.work_dir)),
            "keyring": KeyringResource(master_key_file=str(ads.master_key_file), keyring_path=str(ads.keyring_path)),
            "connections": ConnectionsResource(connections_path=str(ads.connections_path)),
            "facebook_ads": ServedFacebook(url=ads.server.url, piece_rows=96),
        }
        instance = DagsterInstance.ephemeral()
        instance.add_dynamic_partitions(FACEBOOK_CONNECTIONS.name, [WEST, TOKYO])
        defs = Definitions(assets=FACEBOOK_ASSETS, asset_checks=FACEBOOK_CHECKS, jobs=[facebook_job],
                           resources=resources)
        yield ads, (defs, instance, resources)


def test_a_big_sync_loads_piece_after_piece_in_one_run(served) -> None:
    ads, dagster = served
    result = _run(dagster, WEST)
    assert result.success
    insights = _materialization(result, "ad_insights")
    loads = ads.query(f"SELECT count(DISTINCT synced_at) FROM {RAW}.ad_insights WHERE connection_id = ?", [WEST])[0][0]
    assert insights["loads"] == loads >= 3  # one write time per piece
    rows = 12 * SERVED_DAYS
    assert insights["inserted"] == insights["rows_loaded"] == insights["dagster/partition_row_count"] == rows
    assert insights["updated"] == 0 and insights["full_resync"] is True
    assert insights["http_requests"] == _materialization(result, "ads")["http_requests"]  # the whole run's
    assert sum(job["file_path"].endswith(".parquet") for job in insights["jobs"]) == loads  # a rows file per load
    ads_meta = _materialization(result, "ads")
    assert ads_meta["inserted"] == ads_meta["rows_loaded"] == 12 and ads_meta["loads"] == loads
    assert ads.query(f"SELECT count(*), count(DISTINCT insight_id) FROM {RAW}.ad_insights WHERE connection_id = ?",
                     [WEST]) == [(12 * SERVED_DAYS, 12 * SERVED_DAYS)]
    assert_mirror(ads, WEST)
    state = ads.registry.get(WEST).sync_state
    assert RESUME_KEY not in state and state["insights_until"] == ads.account(WEST).today().isoformat()
    assert all(c.passed for c in result.get_asset_check_evaluations())


BUILT: dict[str, dlt.Pipeline] = {}


class RecordingWarehouse(WarehouseResource):
    """The warehouse resource keeping the last pipeline it built under each name (in `BUILT`: Dagster hands a run
    its own copy of the resource), so a test can open DuckDB with the very destination settings a load used."""

    def pipeline(self, name: str, dataset: str, memory_limit: str | None = None) -> dlt.Pipeline:
        BUILT[name] = built = super().pipeline(name, dataset, memory_limit)
        return built


def _memory_limit(pipeline: dlt.Pipeline) -> str:
    """DuckDB's memory cap on a connection the pipeline's destination opens, as the load's connections get it."""
    with pipeline.sql_client() as client:
        return client.execute_sql("SELECT current_setting('memory_limit')")[0][0]


def _as_duckdb_says(limit: str) -> str:
    with duckdb.connect(config={"memory_limit": limit}) as con:
        return con.execute("SELECT current_setting('memory_limit')").fetchone()[0]


def test_a_sync_loads_under_metas_own_memory_cap_and_other_pipelines_keep_the_shared_one(served) -> None:
    ads, (defs, instance, resources) = served
    warehouse = RecordingWarehouse(path=str(ads.warehouse), dlt_dir=str(ads.dlt_dir), work_dir=str(ads.work_dir))
    defs = Definitions(assets=FACEBOOK_ASSETS, asset_checks=FACEBOOK_CHECKS, jobs=[facebook_job],
                       resources={**resources, "warehouse": warehouse})
    BUILT.clear()
    result = _run((defs, instance, resources), WEST)
    assert result.success and _materialization(result, "ad_insights")["loads"] >= 3
    assert list(BUILT) == [facebook.SOURCE_NAME]
    meta_cap, shared_cap = _as_duckdb_says(facebook.LOAD_MEMORY_LIMIT), _as_duckdb_says(LOAD_MEMORY_LIMIT)
    assert meta_cap == "61.0 MiB" != shared_cap  # 64 MB, in DuckDB's words
    assert _memory_limit(BUILT[facebook.SOURCE_NAME]) == meta_cap
    assert _memory_limit(warehouse.pipeline("another_source", "raw_other")) == shared_cap
    assert ads.query(f"SELECT count(*), count(DISTINCT insight_id) FROM {RAW}.ad_insights WHERE connection_id = ?",
                     [WEST]) == [(12 * SERVED_DAYS, 12 * SERVED_DAYS)]
    assert_mirror(ads, WEST)


def test_a_crash_between_pieces_resumes_after_the_last_loaded_one(served) -> None:
    ads, dagster = served
    ads.server.faults.inject("expired_token", endpoint="account", skip=1)  # the second load's first request
    failed = _run(dagster, WEST)
    assert not failed.success
    state = ads.registry.get(WEST).sync_state
    resume = dt.date.fromisoformat(state[RESUME_KEY])
    assert "insights_until" not in state
    first_piece = {k: v for k, v in expected_insights(ads, WEST).items() if k[1] < resume}
    assert 0 < len(first_piece) < 12 * SERVED_DAYS and ads.insights(WEST) == first_piece
    assert ads.query(f"SELECT count(*) FROM {RAW}.ad_insight_actions WHERE connection_id = ? AND date_day >= ?",
                     [WEST, resume]) == [(0,)]
    with ads.keyring() as cipher:
        ads.registry.reauthorise(cipher, WEST, None, ads.account(WEST).token)
    ads.server.insight_ranges.clear()
    result = _run(dagster, WEST)
    assert result.success
    assert ads.server.insight_ranges[0][1] == resume.isoformat()  # it goes on where the loaded piece ended
    insights = _materialization(result, "ad_insights")
    assert insights["inserted"] == insights["rows_loaded"] == 12 * SERVED_DAYS - len(first_piece)
    assert insights["loads"] >= 2
    assert ads.query(f"SELECT count(*), count(DISTINCT insight_id) FROM {RAW}.ad_insights WHERE connection_id = ?",
                     [WEST]) == [(12 * SERVED_DAYS, 12 * SERVED_DAYS)]
    assert_mirror(ads, WEST)
    assert RESUME_KEY not in ads.registry.get(WEST).sync_state


def _materialization(result, table: str) -> dict:
    """The run's metadata of one table, as plain values."""
    event = next(e for e in result.get_asset_materialization_events() if e.asset_key.path[-1] == table)
    return {k: v.value for k, v in event.materialization.metadata.items()}


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
