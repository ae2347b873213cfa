"""End to end on a fresh data folder: `python -m cli run`, then `dagster dev` shows what it built.

Nothing is mocked. The CLI runs as a subprocess on an empty GTG_DATA_DIR and DAGSTER_HOME in tmp; then
`dagster dev -w workspace.yaml` starts once for the module (its own session, so the whole process group
is stopped in teardown) and everything below is asserted through its GraphQL API, the same API the UI uses.

`dagster dev` starts the landing sensor (default RUNNING). It requests only days with files the ledger has
not loaded (none here), but the assertions still select the CLI's runs and materialisations by run id and by
a time bound taken before `dagster dev` started, never by "latest".
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest

pytestmark = pytest.mark.timeout(900)

PROJECT_ROOT = Path(__file__).resolve().parent.parent

EVENTS, DAYS = 3000, 3
# The sandbox generator is seeded (seed 7), so these counts are exact for `--events 3000 --days 3`:
# 1% bad lines and 1% duplicate lines, one file per day.
LINES, VALID_EVENTS, DUPLICATES, BAD_LINES = 3000, 2940, 30, 30

LOCATION = "definitions"
REPOSITORY = "__repository__"
ASSET_PATH = ["raw_events", "usage_events"]
JOB = "usage_events_job"
SENSOR = "usage_events_landing_sensor"
CHECKS = {"events_unique_event_ids", "events_quarantine_share", "events_personal_data_encrypted",
          "events_landed_files_unchanged", "events_opted_out_without_identifiers",
          "within_retention__usage_events", "within_retention__usage_events_quarantine"}
PRIVACY_JOBS = ("privacy_retention_job", "data_subject_requests_job")
PROMISES = 15  # the privacy policy's promises (pipelines/privacy/policy_evidence.toml), each evidenced by checks
PRIVACY_ASSETS = [["privacy", "retention", "raw_events", "anonymise_usage_events"],
                  ["privacy", "retention", "raw_events", "delete_usage_events_quarantine"],
                  ["privacy", "data_subject_requests"], ["privacy", "policy_evidence"]]

# The mail streams (sandbox default: 3 Gmail and 2 Outlook connections), each with its two checks and the
# retention check of its table; a messages asset also loads its recipients table, with that table's checks.
MAIL_ASSETS = {("raw_gmail", "gmail_messages"): "gmail_sync_job", ("raw_gmail", "gmail_contacts"): "gmail_sync_job",
               ("raw_outlook", "outlook_messages"): "outlook_sync_job",
               ("raw_outlook", "outlook_contacts"): "outlook_sync_job"}
CHILD_TABLES = {"gmail_messages": "gmail_message_recipients", "outlook_messages": "outlook_message_recipients"}
MAIL_CONNECTIONS = {"gmail_sync_job": 3, "outlook_sync_job": 2}
FACEBOOK_CONNECTIONS = 3  # the sandbox's ad accounts; 18 checks beside the assets, 9 retention checks
FACEBOOK_DAYS = "7"  # days of insights per sandbox ad account: enough to sync, small enough for the time limit
LINKEDIN_TABLES = ("linkedin_ads_accounts", "linkedin_ads_campaign_groups", "linkedin_ads_campaigns",
                   "linkedin_ads_creatives", "linkedin_ads_campaign_analytics", "linkedin_ads_creative_analytics")
STARTUP_TIMEOUT_S = 120
STOP_TIMEOUT_S = 30
# Environment variables that would move a path away from GTG_DATA_DIR or change the run's outcome.
_OVERRIDES = (
    "GTG_WAREHOUSE_PATH", "GTG_EVENTS_LANDING_URL", "GTG_KEYRING_PATH", "GTG_MASTER_KEY_FILE",
    "GTG_MASTER_KEY", "GTG_ENV", "GTG_QUARANTINE_MAX_SHARE", "GTG_SANDBOX_EVENTS", "DAGSTER_HOME",
    "GTG_EVENTS_START_DATE", "GTG_EVIDENCE_PAGE",
)

# Log of the running `dagster dev`, for the failure report of any test of this module.
_DEV_LOG: dict[str, Path] = {}


def _tail(path: Path | None, lines: int = 60) -> str:
    if path is None or not path.exists():
        return "(no dagster dev log)"
    text = path.read_text(encoding="utf-8", errors="replace").splitlines()
    return "\n".join(text[-lines:])


@pytest.fixture(autouse=True)
def _log_tail_on_failure(request: pytest.FixtureRequest):
    """When a test of this module fails, print the tail of the dagster dev log past pytest's capture."""
    failed_before = request.session.testsfailed
    yield
    if request.session.testsfailed > failed_before and "dev_log" in _DEV_LOG:
        capture = request.config.pluginmanager.getplugin("capturemanager")
        with capture.global_and_fixture_disabled():
            print(f"\n----- tail of {_DEV_LOG['dev_log']} ({request.node.name} failed) -----")
            print(_tail(_DEV_LOG["dev_log"]))
            print("----- end of dagster dev log -----")


# ------------------------------------------------------------------------------------------------------
# Step 1: the main run, as a subprocess on a fresh data folder
# ------------------------------------------------------------------------------------------------------


@dataclass
class CliRun:
    env: dict[str, str]
    tmp: Path
    result: subprocess.CompletedProcess
    possible_end_days: set[dt.date]

    @property
    def output(self) -> str:
        return f"exit code {self.result.returncode}\n--- stdout ---\n{self.result.stdout}\n" \
               f"--- stderr (tail) ---\n{self.result.stderr[-4000:]}"

    @property
    def day_runs(self) -> list[tuple[str, str, str, dict[str, int], str]]:
        """(day, run id, status, counts, checks) per line `  <day>: run <id> <status>: <counts>; checks passed n/m`."""
        rows = re.findall(
            r"^  (\d{4}-\d\d-\d\d): run ([0-9a-f-]{36}) (\w+): (.*); checks passed (\d+/\d+)$",
            self.result.stdout, re.MULTILINE,
        )
        return [(day, run, status, _counts(counts), checks) for day, run, status, counts, checks in rows]

    @property
    def days(self) -> list[str]:
        """The landed days, oldest first, one run each."""
        return [row[0] for row in self.day_runs]


def _counts(text: str) -> dict[str, int]:
    return {name: int(value) for name, value in (part.rsplit(" ", 1) for part in text.split(", "))}


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory: pytest.TempPathFactory) -> CliRun:
    tmp = tmp_path_factory.mktemp("dagster_ui")
    env = {k: v for k, v in os.environ.items() if k not in _OVERRIDES}
    env.update(
        GTG_DATA_DIR=str(tmp / "data"),
        GTG_ENV="sandbox",
        DAGSTER_HOME=str(tmp / "dagster_home"),
        RUNTIME__DLTHUB_TELEMETRY="false",
        PYTHONUNBUFFERED="1",
        GTG_SANDBOX_FACEBOOK_DAYS=FACEBOOK_DAYS,
    )
    today_before = dt.datetime.now(dt.timezone.utc).date()
    result = subprocess.run(
        [sys.executable, "-m", "cli", "run", "--events", str(EVENTS), "--days", str(DAYS)],
        cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=900,
    )
    today_after = dt.datetime.now(dt.timezone.utc).date()
    return CliRun(env=env, tmp=tmp, result=result, possible_end_days={today_before, today_after})


def test_cli_run_materialises_and_passes_its_checks(cli_run: CliRun) -> None:
    out = cli_run.result.stdout
    assert cli_run.result.returncode == 0, cli_run.output
    assert (
        f"generated {LINES} sandbox event lines in {DAYS} files "
        f"({VALID_EVENTS} events, {DUPLICATES} duplicates, {BAD_LINES} bad lines)"
    ) in out.splitlines(), cli_run.output

    runs = cli_run.day_runs
    assert len(runs) == DAYS, cli_run.output
    last = dt.date.fromisoformat(cli_run.days[-1])
    assert last in cli_run.possible_end_days, cli_run.output
    assert cli_run.days == [(last - dt.timedelta(days=DAYS - 1 - i)).isoformat() for i in range(DAYS)]
    assert {status for _, _, status, _, _ in runs} == {"success"}, cli_run.output
    assert {checks for *_, checks in runs} == {f"{len(CHECKS)}/{len(CHECKS)}"}, cli_run.output
    assert len({run for _, run, *_ in runs}) == DAYS
    # Per day the counts balance, and over the days they are the generator's exact totals.
    for *_, counts, _ in runs:
        assert counts["lines_read"] == counts["events_loaded"] + counts["duplicates_dropped"] + counts["lines_quarantined"]
    assert (
        f"  all days: lines_read {LINES}, events_loaded {VALID_EVENTS}, "
        f"duplicates_dropped {DUPLICATES}, lines_quarantined {BAD_LINES}"
    ) in out.splitlines(), cli_run.output

    for job, connections in MAIL_CONNECTIONS.items():  # every sandbox connection synced, its checks passed
        assert f"{job}: one run per {job.split('_')[0]} connection ({connections})" in out.splitlines(), cli_run.output
        runs = re.findall(rf"^  ws_\d+-{job.split('_')[0]}-\d: run [0-9a-f-]{{36}} (\w+); checks passed (\d+/\d+)$",
                          out, re.MULTILINE)
        # unique ids and encryption of messages and contacts, encryption of the recipients, three retention checks
        assert runs == [("success", "8/8")] * connections, cli_run.output
    assert f"facebook_ads_sync_job: one run per facebook_ads connection ({FACEBOOK_CONNECTIONS})" in out.splitlines()
    runs = re.findall(r"^  ws_\d+-facebook_ads-\d: run [0-9a-f-]{36} (\w+); checks passed (\d+/\d+)$", out, re.MULTILINE)
    assert runs == [("success", "27/27")] * FACEBOOK_CONNECTIONS, cli_run.output
    assert "linkedin_ads_sync_job: one run per linkedin_ads connection (2)" in out.splitlines(), cli_run.output
    runs = re.findall(r"^  ws_\d+-linkedin_ads-\d: run [0-9a-f-]{36} (\w+); checks passed (\d+/\d+)$", out, re.MULTILINE)
    assert runs == [("success", "12/12")] * 2, cli_run.output  # a unique-key and a retention check per table
    assert "    linkedin_ads_accounts: inserted 2, updated 0, deleted 0, http_requests 11, retries 0, waits 0" \
        in out.splitlines(), cli_run.output
    for job in PRIVACY_JOBS:  # then the privacy jobs: nothing expired yet, no request waiting
        assert re.search(rf"^{job}: run [0-9a-f-]{{36}} success; checks passed (\d+)/\1$", out, re.MULTILINE), cli_run.output
    # Last, the evidence: every promise is kept, so its own check passes.
    assert re.search(r"^policy_evidence_job: run [0-9a-f-]{36} success; checks passed 1/1$", out, re.MULTILINE), cli_run.output
    assert re.search(rf"^  privacy/policy_evidence: promises {PROMISES}, kept {PROMISES}, "
                     rf"broken 0, not_yet_evidenced 0, checks_read \d+, "
                     r"page \S*/policy_evidence\.html$",
                     out, re.MULTILINE), cli_run.output
    assert re.search(r"^  privacy/retention/raw_events/anonymise_usage_events: action anonymise, keep_days 395, cutoff .*, "
                     r"rows_expired 0, subjects_expired 0, keys_destroyed 0$", out, re.MULTILINE), cli_run.output
    assert f"  raw_events.usage_events: {VALID_EVENTS} rows" in out.splitlines(), cli_run.output
    assert f"  raw_events.usage_events_quarantine: {BAD_LINES} rows" in out.splitlines(), cli_run.output
    # Everything derived from GTG_DATA_DIR: the warehouse and the instance are in tmp.
    assert (cli_run.tmp / "data" / "warehouse.duckdb").is_file()
    assert (cli_run.tmp / "dagster_home" / "dagster.yaml").is_file()


def test_cli_run_leaves_analysts_plain_types_and_documented_raw_columns(cli_run: CliRun) -> None:
    """Counts reach analysts as BIGINT (not HUGEINT), the staging copies dlt empties are not listed, and every
    column of the raw events table carries its declared description as a DuckDB comment."""
    import duckdb

    assert cli_run.result.returncode == 0, cli_run.output
    assert "_staging." not in cli_run.result.stdout
    with duckdb.connect(str(cli_run.tmp / "data" / "analytics_snapshot.duckdb"), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM duckdb_columns() WHERE data_type = 'HUGEINT'").fetchone() == (0,)
    with duckdb.connect(str(cli_run.tmp / "data" / "warehouse.duckdb"), read_only=True) as con:
        undocumented = con.execute(
            "SELECT column_name FROM duckdb_columns() WHERE schema_name = 'raw_events' AND table_name = 'usage_events' "
            "AND column_name NOT LIKE '\\_dlt%' ESCAPE '\\' AND comment IS NULL").fetchall()
        ip = con.execute("SELECT comment FROM duckdb_columns() WHERE schema_name = 'raw_events' "
                         "AND table_name = 'usage_events' AND column_name = 'ip'").fetchone()
    assert undocumented == []
    assert ip == ("The client IP address. Personal data (user.device.ip_address), stored encrypted.",)


# ------------------------------------------------------------------------------------------------------
# Step 2: `dagster dev` on the same folders, asserted through GraphQL
# ------------------------------------------------------------------------------------------------------


@dataclass
class DagsterUI:
    url: str
    log: Path
    cli: CliRun = field(repr=False)
    started_ms: int  # wall clock just before `dagster dev` started: every CLI event is older
    _cache: dict = field(default_factory=dict, repr=False)

    def query(self, query: str, variables: dict | None = None, timeout: float = 30) -> dict:
        body = json.dumps({"query": query, "variables": variables or {}}).encode()
        request = urllib.request.Request(self.url, data=body, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=timeout) as response:
            payload = json.load(response)
        assert not payload.get("errors"), json.dumps(payload["errors"], indent=1)
        return payload["data"]

    def location_entries(self) -> list[dict]:
        if "workspace" not in self._cache:
            data = self.query(WORKSPACE_QUERY)
            workspace = data["workspaceOrError"]
            assert workspace["__typename"] == "Workspace", workspace
            self._cache["workspace"] = workspace["locationEntries"]
        return self._cache["workspace"]

    def repository(self) -> dict:
        (entry,) = [e for e in self.location_entries() if e["name"] == LOCATION]
        location = entry["locationOrLoadError"]
        assert location["__typename"] == "RepositoryLocation", _python_error(location)
        (repository,) = [r for r in location["repositories"] if r["name"] == REPOSITORY]
        return repository


def _python_error(error: dict | None) -> str:
    if not error:
        return "no location"
    text = [f"{error.get('__typename')}: {error.get('message')}", *error.get("stack", [])]
    if error.get("cause"):
        text.append(f"caused by: {error['cause'].get('message')}")
    return "".join(text)


WORKSPACE_QUERY = """
query Workspace {
  workspaceOrError {
    __typename
    ... on Workspace {
      locationEntries {
        name
        loadStatus
        locationOrLoadError {
          __typename
          ... on PythonError { message stack cause { message } }
          ... on RepositoryLocation {
            name
            repositories {
              name
              jobs { name pipelineSnapshotId }
              sensors { name defaultStatus targets { pipelineName } }
              assetNodes {
                assetKey { path }
                groupName
                isPartitioned
                jobNames
                partitionDefinition { type }
                assetChecksOrError {
                  __typename
                  ... on AssetChecks { checks { name } }
                }
              }
            }
          }
        }
      }
    }
  }
}
"""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _live_group_members(pgid: int) -> list[psutil.Process]:
    """Processes of the process group that still run (zombies waiting for init to reap them do not)."""
    members = []
    for proc in psutil.process_iter():
        try:
            if os.getpgid(proc.pid) == pgid and proc.status() != psutil.STATUS_ZOMBIE:
                members.append(proc)
        except (ProcessLookupError, psutil.NoSuchProcess):
            continue
    return members


def _alive(procs: list[psutil.Process]) -> list[psutil.Process]:
    alive = []
    for proc in procs:
        try:
            if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                alive.append(proc)
        except psutil.NoSuchProcess:
            continue
    return alive


def _wait_gone(proc: subprocess.Popen, pgid: int, extra: list[psutil.Process], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        proc.poll()
        if proc.returncode is not None and not _live_group_members(pgid) and not _alive(extra):
            return True
        time.sleep(0.2)
    return False


def _stop(proc: subprocess.Popen) -> list[str]:
    """SIGTERM the whole process group, SIGKILL after a timeout; return what is still left (should be [])."""
    pgid = proc.pid  # start_new_session: the leader's pid is the group id
    try:
        descendants = psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        descendants = []
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            pass
        # A descendant that left the group (its own session) is signalled on its own.
        for child in _alive(descendants):
            try:
                if os.getpgid(child.pid) != pgid:
                    child.send_signal(sig)
            except (ProcessLookupError, psutil.NoSuchProcess):
                pass
        if _wait_gone(proc, pgid, descendants, STOP_TIMEOUT_S if sig == signal.SIGTERM else 10):
            break
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass
    left = {p.pid: p for p in _live_group_members(pgid) + _alive(descendants)}
    return [f"{pid}: {' '.join(p.cmdline()[:6])}" for pid, p in left.items() if p.is_running()]


@pytest.fixture(scope="module")
def dagster_ui(cli_run: CliRun) -> DagsterUI:
    if cli_run.result.returncode != 0:
        pytest.fail(f"`python -m cli run` failed, so dagster dev is not started:\n{cli_run.output}")
    port = _free_port()
    log_path = cli_run.tmp / "dagster_dev.log"
    _DEV_LOG["dev_log"] = log_path
    started_ms = int(time.time() * 1000)
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "dagster", "dev", "-w", "workspace.yaml", "-p", str(port), "-h", "127.0.0.1"],
            cwd=PROJECT_ROOT, env=cli_run.env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    ui = DagsterUI(url=f"http://127.0.0.1:{port}/graphql", log=log_path, cli=cli_run, started_ms=started_ms)
    try:
        _wait_until_loaded(ui, proc)
        yield ui
    finally:
        left = _stop(proc)
        _DEV_LOG.pop("dev_log", None)
        assert not left, f"processes left after stopping dagster dev: {left}\n{_tail(log_path)}"


def _wait_until_loaded(ui: DagsterUI, proc: subprocess.Popen) -> None:
    """Poll GraphQL until the webserver answers and the code location finished loading (or failed to)."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    last_error = "no answer yet"
    started = time.monotonic()
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"dagster dev exited with code {proc.returncode} while starting:\n{_tail(ui.log)}")
        try:
            data = ui.query("{ workspaceOrError { __typename ... on Workspace "
                            "{ locationEntries { name loadStatus } } } }", timeout=5)
            entries = data["workspaceOrError"].get("locationEntries") or []
            if any(e["name"] == LOCATION and e["loadStatus"] == "LOADED" for e in entries):
                print(f"dagster dev answered with {LOCATION} loaded after {time.monotonic() - started:.1f}s")
                return
            last_error = f"location entries: {entries}"
        except (urllib.error.URLError, ConnectionError, TimeoutError, socket.timeout, AssertionError) as exc:
            last_error = repr(exc)
        time.sleep(0.5)
    pytest.fail(f"dagster dev did not load {LOCATION} within {STARTUP_TIMEOUT_S}s ({last_error}):\n{_tail(ui.log)}")


def test_code_location_loads_without_errors(dagster_ui: DagsterUI) -> None:
    entries = dagster_ui.location_entries()
    assert [e["name"] for e in entries] == [LOCATION]
    (entry,) = entries
    assert entry["loadStatus"] == "LOADED"
    location = entry["locationOrLoadError"]
    assert location is not None
    assert location["__typename"] == "RepositoryLocation", _python_error(location)
    assert location["name"] == LOCATION
    assert [r["name"] for r in location["repositories"]] == [REPOSITORY]


def test_asset_is_partitioned_and_has_exactly_its_three_checks(dagster_ui: DagsterUI) -> None:
    nodes = [n for n in dagster_ui.repository()["assetNodes"] if n["assetKey"]["path"] == ASSET_PATH]
    assert len(nodes) == 1, [n["assetKey"]["path"] for n in dagster_ui.repository()["assetNodes"]]
    (node,) = nodes
    assert node["isPartitioned"] is True
    assert node["partitionDefinition"] is not None
    assert node["partitionDefinition"]["type"] == "TIME_WINDOW"
    assert JOB in node["jobNames"]
    checks = node["assetChecksOrError"]
    assert checks["__typename"] == "AssetChecks", checks
    names = [c["name"] for c in checks["checks"]]
    assert len(names) == len(CHECKS)
    assert set(names) == CHECKS


def test_connected_assets_are_partitioned_by_connection_with_their_checks(dagster_ui: DagsterUI) -> None:
    repository = dagster_ui.repository()
    nodes = {tuple(n["assetKey"]["path"]): n for n in repository["assetNodes"]}
    for path, job in MAIL_ASSETS.items():
        node = nodes[path]
        assert node["isPartitioned"] and node["partitionDefinition"]["type"] == "DYNAMIC"
        assert job in node["jobNames"]
        names = {c["name"] for c in node["assetChecksOrError"]["checks"]}
        tables = [path[1], *([CHILD_TABLES[path[1]]] if path[1] in CHILD_TABLES else [])]
        assert names == {f"{path[1]}_unique_ids", *(f"{t}_personal_data_encrypted" for t in tables),
                         *(f"within_retention__{t}" for t in tables)}
    for table in LINKEDIN_TABLES:
        node = nodes[("raw_linkedin_ads", table)]
        assert node["isPartitioned"] and node["partitionDefinition"]["type"] == "DYNAMIC"
        assert "linkedin_ads_sync_job" in node["jobNames"]
        assert {c["name"] for c in node["assetChecksOrError"]["checks"]} == {
            f"{table}_unique_keys", f"within_retention__{table}"}
    sensors = {s["name"]: s for s in repository["sensors"]}
    assert sensors["connections_sensor"]["defaultStatus"] == "RUNNING"
    assert {t["pipelineName"] for t in sensors["connections_sensor"]["targets"]} == {
        *MAIL_CONNECTIONS, "facebook_ads_sync_job", "google_ads_sync_job", "linkedin_ads_sync_job"}


def test_sensor_and_job_are_listed(dagster_ui: DagsterUI) -> None:
    repository = dagster_ui.repository()
    assert set(PRIVACY_JOBS) <= {j["name"] for j in repository["jobs"]}
    paths = [n["assetKey"]["path"] for n in repository["assetNodes"]]
    assert all(p in paths for p in PRIVACY_ASSETS), paths
    assert [j["name"] for j in repository["jobs"]].count(JOB) == 1
    sensors = [s for s in repository["sensors"] if s["name"] == SENSOR]
    assert len(sensors) == 1, [s["name"] for s in repository["sensors"]]
    (sensor,) = sensors
    assert [t["pipelineName"] for t in sensor["targets"]] == [JOB]
    assert sensor["defaultStatus"] == "RUNNING"


RUNS_QUERY = """
query Runs($filter: RunsFilter) {
  runsOrError(filter: $filter) {
    __typename
    ... on Runs { count results { runId jobName status tags { key value } } }
    ... on PythonError { message }
    ... on InvalidPipelineRunsFilterError { message }
  }
}
"""


def test_cli_runs_are_visible_as_successful_runs(dagster_ui: DagsterUI) -> None:
    runs_by_day = {day: run for day, run, *_ in dagster_ui.cli.day_runs}
    successes = dagster_ui.query(RUNS_QUERY, {"filter": {"pipelineName": JOB, "statuses": ["SUCCESS"]}})
    runs = successes["runsOrError"]
    assert runs["__typename"] == "Runs", runs
    assert set(runs_by_day.values()) <= {r["runId"] for r in runs["results"]}

    by_id = dagster_ui.query(RUNS_QUERY, {"filter": {"runIds": list(runs_by_day.values())}})["runsOrError"]
    assert by_id["__typename"] == "Runs", by_id
    assert by_id["count"] == DAYS
    for run in by_id["results"]:
        tags = {t["key"]: t["value"] for t in run["tags"]}
        assert (run["jobName"], run["status"]) == (JOB, "SUCCESS")
        assert runs_by_day[tags["dagster/partition"]] == run["runId"]


ORIGINS_QUERY = """
query Origins($runIds: [String!]) {
  runsOrError(filter: {runIds: $runIds}) {
    __typename
    ... on Runs { results { runId jobName pipelineSnapshotId repositoryOrigin { repositoryLocationName repositoryName } } }
  }
}
"""


def _cli_run_ids(cli: CliRun) -> dict[str, str]:
    """Every run the CLI printed (`<job>: run <id> ...` and `  <day or connection>: run <id> ...`), by id: its job."""
    jobs, job = {}, None
    for line in cli.result.stdout.splitlines():
        if not line.startswith(" ") and ":" in line:
            job = line.split(":", 1)[0]
        if found := re.search(r": run ([0-9a-f-]{36}) ", line):
            jobs[found[1]] = job
    return jobs


def test_cli_runs_carry_the_origin_and_snapshot_the_webserver_loads(dagster_ui: DagsterUI) -> None:
    """The UI re-executes a run without a warning when the run's repository origin names a loaded repository
    and its snapshot is the one the repository holds now (`useJobAvailabilityErrorForRun`, match
    'origin-and-snapshot'): every run `cli run` started is such a run."""
    printed = _cli_run_ids(dagster_ui.cli)
    assert set(printed.values()) == {JOB, *MAIL_CONNECTIONS, "facebook_ads_sync_job", "google_ads_sync_job",
                                     "linkedin_ads_sync_job", "crm_app_sync_job", "contact_uploads_job",
                                     "analytics_job", *PRIVACY_JOBS, "policy_evidence_job"}, printed
    assert list(printed.values()).count(JOB) == DAYS
    snapshots = {j["name"]: j["pipelineSnapshotId"] for j in dagster_ui.repository()["jobs"]}
    runs = dagster_ui.query(ORIGINS_QUERY, {"runIds": list(printed)})["runsOrError"]
    assert runs["__typename"] == "Runs", runs
    assert {r["runId"]: r["jobName"] for r in runs["results"]} == printed
    for run in runs["results"]:
        assert run["repositoryOrigin"] == {"repositoryLocationName": LOCATION, "repositoryName": REPOSITORY}, run
        assert run["pipelineSnapshotId"] == snapshots[run["jobName"]], run


MATERIALIZATIONS_QUERY = """
query Materializations($path: [String!]!, $before: String!, $limit: Int!) {
  assetOrError(assetKey: {path: $path}) {
    __typename
    ... on Asset {
      assetMaterializations(beforeTimestampMillis: $before, limit: $limit) {
        runId
        partition
        metadataEntries {
          label
          __typename
          ... on IntMetadataEntry { intValue intRepr }
        }
      }
    }
  }
}
"""


def _materializations(ui: DagsterUI, limit: int) -> list[dict]:
    # Only events older than the start of `dagster dev`: the sensor's own runs come later.
    data = ui.query(MATERIALIZATIONS_QUERY, {"path": ASSET_PATH, "before": str(ui.started_ms), "limit": limit})
    asset = data["assetOrError"]
    assert asset["__typename"] == "Asset", asset
    return asset["assetMaterializations"]


def test_each_day_has_one_materialization_with_its_events_loaded(dagster_ui: DagsterUI) -> None:
    expected = {day: (run, counts["events_loaded"]) for day, run, _, counts, _ in dagster_ui.cli.day_runs}
    every = _materializations(dagster_ui, limit=50)
    assert len(every) == DAYS
    for event in every:
        entries = {e["label"]: e for e in event["metadataEntries"]}
        loaded = entries["events_loaded"]
        assert loaded["__typename"] == "IntMetadataEntry", loaded
        assert (event["runId"], loaded["intValue"]) == expected[event["partition"]]
    assert sum(loaded for _, loaded in expected.values()) == VALID_EVENTS


# ------------------------------------------------------------------------------------------------------
# Step 3: the same `dagster dev`, seen in a real browser (Debian's headless Chromium driven by Playwright)
# ------------------------------------------------------------------------------------------------------

CHROMIUM = Path(os.environ.get("GTG_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
# Screenshots of every page a failed browser test visited (CI keeps this folder).
ARTIFACTS = Path(os.environ.get("GTG_TEST_ARTIFACTS") or PROJECT_ROOT / ".test-artifacts")
PAGE_TIMEOUT_MS = 60_000
EVIDENCE_PATH = ["privacy", "policy_evidence"]


@pytest.fixture(scope="module")
def chromium(dagster_ui: DagsterUI, tmp_path_factory: pytest.TempPathFactory):
    if not CHROMIUM.is_file():
        pytest.fail(f"{CHROMIUM} is missing: `apt-get install -y chromium` (.ci/run installs it)")
    from playwright.sync_api import sync_playwright

    profile = tmp_path_factory.mktemp("chromium_profile")
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile), executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS, headless=True,
            viewport={"width": 1600, "height": 3000})
        context.set_default_timeout(PAGE_TIMEOUT_MS)
        try:
            yield context
        finally:
            context.close()


@dataclass
class Browser:
    base: str
    context: object
    pages: list = field(default_factory=list)

    def open(self, path: str, wait_for: str):
        """Open a page of the UI in the test's tab and wait for data-bearing text on it (not a heading: those
        render first). One tab per test: every open tab keeps polling the server for live data."""
        if not self.pages:
            self.pages.append(self.context.new_page())
        page = self.pages[0]
        page.goto(self.base + path)
        page.get_by_text(wait_for, exact=False).first.wait_for()
        return page


@pytest.fixture
def browser(chromium, dagster_ui: DagsterUI, request: pytest.FixtureRequest) -> Browser:
    """A fresh tab (and any page a test adds) for one test; when it fails, a screenshot of each is kept under
    ARTIFACTS, showing where it stopped."""
    failed_before = request.session.testsfailed
    pages = Browser(base=dagster_ui.url.removesuffix("/graphql"), context=chromium)
    yield pages
    if request.session.testsfailed > failed_before:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        for n, page in enumerate(pages.pages):
            page.screenshot(path=str(ARTIFACTS / f"{request.node.name}-{n}.png"), full_page=True)
    for page in pages.pages:
        page.close()


def _asset_href(path: list[str]) -> str:
    return "/assets/" + "/".join(path)


def test_browser_shows_the_code_location_loaded(browser: Browser) -> None:
    page = browser.open("/locations", "Loaded")
    text = page.inner_text("body")
    assert "1 code location" in text and LOCATION in text
    assert "Failed" not in text and "Error" not in text


def test_browser_lists_every_group_with_its_assets(browser: Browser, dagster_ui: DagsterUI) -> None:
    groups: dict[str, list[list[str]]] = {}
    for node in dagster_ui.repository()["assetNodes"]:
        groups.setdefault(node["groupName"], []).append(node["assetKey"]["path"])
    assert set(groups) == {"analytics", "privacy", "raw_events", "raw_gmail", "raw_outlook", "raw_facebook_ads",
                           "raw_google_ads", "raw_linkedin_ads", "raw_crm_app", "raw_contact_uploads"}
    for group, paths in sorted(groups.items()):
        # Long names show shortened ("raw_contact_up…_files"): wait for the first of the group's links instead.
        page = browser.open(f"/locations/{LOCATION}/asset-groups/{group}/list", group)
        page.locator(", ".join(f'a[href="{_asset_href(p)}"]' for p in paths)).first.wait_for()
        page.mouse.move(640, 600)
        seen: set[tuple[str, ...]] = set()
        for _ in range(len(paths)):  # a long list is virtualised: scroll through it
            seen |= {tuple(p) for p in paths if page.locator(f'a[href="{_asset_href(p)}"]').count()}
            if len(seen) == len(paths):
                break
            page.mouse.wheel(0, 600)
            page.wait_for_timeout(200)
        missing = [p for p in paths if tuple(p) not in seen]
        assert missing == [], f"group {group}: no link to {missing}"


def test_browser_shows_every_check_green(browser: Browser, dagster_ui: DagsterUI) -> None:
    """Every check of every asset shows Succeeded, the evidence's own included."""
    with_checks = [(n["assetKey"]["path"], [c["name"] for c in n["assetChecksOrError"]["checks"]])
                   for n in dagster_ui.repository()["assetNodes"] if n["assetChecksOrError"].get("checks")]
    assert len(with_checks) == 71
    for path, names in with_checks:
        page = browser.open(f"{_asset_href(path)}?view=checks", f"Checks ({len(names)})")
        deadline = time.monotonic() + 30  # statuses arrive after the list
        while page.get_by_text("Succeeded", exact=True).count() < len(names) and time.monotonic() < deadline:
            page.wait_for_timeout(250)
        assert page.get_by_text("Succeeded", exact=True).count() == len(names), f"{'/'.join(path)}: {names}"


def test_browser_shows_the_materialised_days_and_none_missing(browser: Browser, cli_run: CliRun) -> None:
    page = browser.open(f"{_asset_href(ASSET_PATH)}?view=partitions", f"Materialized ({DAYS})")
    text = page.inner_text("body")
    assert f"{DAYS} Partitions Selected" in text
    assert "Missing (0)" in text and "Failed (0)" in text
    assert all(page.get_by_text(day, exact=True).count() >= 1 for day in cli_run.days)


def test_browser_renders_the_policy_evidence_with_every_promise_kept(browser: Browser, cli_run: CliRun) -> None:
    page = browser.open(_asset_href(EVIDENCE_PATH), "[Show Markdown]")
    page.get_by_text("[Show Markdown]").first.click()
    page.locator("td", has_text="kept").first.wait_for()
    rows = [r.split("\t") for r in page.locator("tr", has=page.locator("td", has_text="passed")).all_inner_texts()]
    verdicts = {claim: verdict for _, claim, verdict, *_ in rows}
    assert len(verdicts) == PROMISES
    assert set(verdicts.values()) == {"kept"}

    # The page for auditors, opened from the data folder: self-contained, the same verdicts.
    html_page = browser.context.new_page()
    browser.pages.append(html_page)
    html_page.goto((cli_run.tmp / "data" / "policy_evidence.html").as_uri())
    assert html_page.locator("tbody tr").count() == PROMISES
    assert html_page.locator("tbody tr.kept").count() == PROMISES
    assert html_page.locator("tbody tr.not-yet-evidenced").count() == 0


# The Dagster UI's warnings on the re-execute button of a run it cannot tie to the loaded job
# (dagster-webserver's useJobAvailabilityErrorForRun.tsx): the icon, and the texts of its tooltip.
REEXECUTE_WARNINGS = ("may be a different version from the original pipeline run",
                      "may be different than the one used for the original run",
                      "from a different code location", "is not available in your definitions")


def test_browser_reexecutes_a_cli_run_without_a_version_warning(browser: Browser, cli_run: CliRun) -> None:
    """The run page of a `cli run` run (a day of the events, the evidence) offers re-execution with no warning
    icon on the button and no warning in its tooltip."""
    printed = _cli_run_ids(cli_run)
    (evidence_run,) = [run for run, job in printed.items() if job == "policy_evidence_job"]
    for run_id in (cli_run.day_runs[0][1], evidence_run):
        page = browser.open(f"/runs/{run_id}", "Re-execute")
        button = page.locator("button", has_text="Re-execute").first
        # Disabled (with an error icon) until the workspace is loaded in the page, when the run is matched.
        deadline = time.monotonic() + PAGE_TIMEOUT_MS / 1000
        while button.is_disabled() and time.monotonic() < deadline:
            page.wait_for_timeout(250)
        assert button.is_enabled(), run_id
        assert button.locator('[role="img"][aria-label="warning"], [role="img"][aria-label="error"]').count() == 0
        button.hover()
        page.wait_for_timeout(500)  # a tooltip opens after a short delay
        text = page.inner_text("body")
        assert [w for w in REEXECUTE_WARNINGS if w in text] == [], run_id
