"""Values a tracker controls must not steer the platform's costs nor reach its error messages (issue 14,
items 2 and 4): unknown workspaces are quarantined without making keys, user agents are parsed from a bounded
head, and a value that used to fail the whole day (an undecodable percent-escape) now loads, leaving no copy
in Dagster's storage or dlt's folders."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from dagster import DagsterInstance

from pipelines.usage_events.settings import MAX_USER_AGENT_CHARS
from tests.conftest import Platform
from tests.test_ingestion_assets import _defs

EVENTS = "raw_events.usage_events"
QUARANTINE = "raw_events.usage_events_quarantine"
DAY = "dt=2026-11-24"


def _event(n: int, workspace: str = "ws_known", **changes) -> str:
    return json.dumps({"event_id": f"00000000-0000-4000-8000-{n:012d}", "workspace_id": workspace,
                       "event_type": "page_view", "occurred_at": "2026-11-24T10:00:00Z", "anonymous_id": f"a-{n}",
                       "consent": {"analytics": True, "ads": False}, **changes}) + "\n"


def _workspace_keys(platform: Platform) -> list[str]:
    with sqlite3.connect(platform.keyring_path) as con:
        return sorted(r[0] for r in con.execute("SELECT workspace_id FROM workspace_keys"))


def test_events_of_unknown_workspaces_are_quarantined_and_make_no_keys(platform: Platform) -> None:
    """50,000 made-up workspace ids in one file: each line is quarantined as unknown_workspace under the
    `_unattributed` key, and the keyring holds no key more than for the workspaces the platform knows."""
    folder = platform.landing / DAY
    folder.mkdir(parents=True)
    made_up = "".join(_event(n, workspace=f"ws_forged_{n}") for n in range(50_000))
    (folder / "forged.ndjson").write_text(_event(10**9) + made_up)
    platform.register_workspaces("ws_known")

    report = platform.ingest()

    assert (report.events_loaded, report.lines_quarantined) == (1, 50_000)
    assert report.quarantine_reasons == {"unknown_workspace": 50_000}
    assert platform.query(f"SELECT reason, reason_detail, workspace_id, count(*) FROM {QUARANTINE} GROUP BY ALL") == [
        ("unknown_workspace", "workspace_id (not a workspace the platform knows)", "_unattributed", 50_000)]
    assert _workspace_keys(platform) == ["_unattributed", "ws_known"]


def test_mail_connections_make_their_workspaces_known(platform: Platform) -> None:
    from pipelines.connections.registry import ConnectionRegistry

    registry = ConnectionRegistry(platform.connections_path)
    with platform.keyring() as cipher:
        registry.add(cipher, "ws_mail", "gmail", "owner@example.com", "refresh-token", sandbox=True)
    assert platform.known_workspaces() == {"ws_mail"}


def test_user_agents_are_parsed_from_a_bounded_head(platform: Platform) -> None:
    """2,000 distinct 1.9 KB user agents: the browser named after the cap is not seen (the parse read only the
    head), the short agent naming it is; the stored agent stays whole."""
    firefox = "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0"
    padding = "Mozilla/5.0 (X11; Linux x86_64) " + "x" * MAX_USER_AGENT_CHARS
    long_agents = [f"{padding} build-{n:06d} {'y' * 1300} Firefox/120.0" for n in range(2000)]
    folder = platform.landing / DAY
    folder.mkdir(parents=True)
    (folder / "agents.ndjson").write_text(
        _event(0, user_agent=firefox) + "".join(_event(n + 1, user_agent=ua) for n, ua in enumerate(long_agents)))
    platform.register_workspaces("ws_known")

    assert platform.ingest().events_loaded == 2001

    families = dict(platform.query(f"SELECT browser_family, count(*) FROM {EVENTS} GROUP BY 1"))
    assert families == {"Firefox": 1, "Other": 2000}
    assert all(1800 < len(ua) <= 2048 for ua in long_agents)  # the contract's maxLength is 2048
    (ws, ref, stored), = platform.query(
        f"SELECT workspace_id, subject_ref, user_agent FROM {EVENTS} WHERE event_id LIKE '%000000000002'")
    with platform.keyring() as keyring:
        assert keyring.decrypt(ws, [stored], subject_refs=[ref], context="usage_events.user_agent").to_pylist() == [
            long_agents[1]]


def test_an_undecodable_escape_loads_and_its_value_stays_out_of_dagster_and_dlt(platform: Platform, tmp_path: Path) -> None:
    """`%ff` in a UTM parameter failed the whole day, and DuckDB's error quoted the value (an e-mail address)
    into Dagster's run storage and dlt's trace. Now the line loads (the parameter kept as sent) and neither
    folder holds the value, nor does any error."""
    secret = "ann.secret.person"
    folder = platform.landing / DAY
    folder.mkdir(parents=True)
    (folder / "utm.ndjson").write_text(
        _event(1, url=f"https://app.gtgcrm.com/x?utm_source={secret}%40example.com%ff&utm_medium=%e2%82")
        + _event(2, url="https://app.gtgcrm.com/x?utm_source=news%20letter", referrer=f"https://r.example/?q=%ff{secret}"))
    platform.register_workspaces("ws_known")
    home = tmp_path / "dagster_home"
    home.mkdir()

    with DagsterInstance.local_temp(str(home)) as instance:
        job = _defs(platform).resolve_job_def("usage_events_job")
        result = job.execute_in_process(instance=instance, partition_key="2026-11-24", raise_on_error=False)

    assert result.success
    assert platform.query(f"SELECT utm_source, utm_medium FROM {EVENTS} ORDER BY event_id") == [
        (f"{secret}%40example.com%ff", "%e2%82"), ("news letter", None)]
    stored = [p for folder in (home, platform.dlt_dir) for p in folder.rglob("*") if p.is_file()]
    assert stored and any(p.suffix == ".db" for p in stored)
    assert [p for p in stored if secret.encode() in p.read_bytes()] == []
