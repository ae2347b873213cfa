"""Who a request reaches, attacked through the real entry points: a forged tracker event in a landed file
loaded by the real ingestion, requests written into the inbox the way the CRM app writes them, the real
request processing. Also: lines without a workspace, the suppression list, and offboarding a workspace."""

from __future__ import annotations

import datetime as dt
import json
import os
import sqlite3
import subprocess
import sys
import uuid
from pathlib import Path

import duckdb

from pipelines.connections.registry import STATUSES
from pipelines.privacy.audit import AuditLog
from pipelines.privacy.dsr import process_pending
from pipelines.privacy.keyring import DecryptStats
from pipelines.privacy.offboard import offboard_workspace
from pipelines.privacy.requests import Inbox, Request
from pipelines.workspaces import UNATTRIBUTED_WORKSPACE
from tests.conftest import Platform, landed_lines
from tests.mail.conftest import GMAIL, GMAIL_2, GMAIL_RECIPIENTS, OUTLOOK, expected_recipients, mail  # noqa: F401
from tests.privacy.test_mail_privacy import _correspondent
from tests.test_analytics import _build
from tests.privacy.test_requests import (  # noqa: F401 - loaded, platform: the fixtures (a loaded copy per test)
    IDS, USER, WS_EVENTS, WS_QUARANTINE, _decrypted_events, _files_containing, _oracle, _people, loaded, platform,
)

ATTACK_DAY = dt.date(2026, 11, 25)
ATTACKER = "usr_attacker_0001"
ATTACKER_COOKIE = "ck-attacker-0001"
ATTACKER_IP = "203.0.113.66"


def _land(platform: Platform, day: dt.date, name: str, lines: list[bytes]) -> None:
    folder = platform.landing / f"dt={day.isoformat()}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(b"".join(line + b"\n" for line in lines))


def _event(template: dict, **fields) -> dict:
    """A valid event like `template` (a landed line), with a new id and `fields` set (None: left out)."""
    event = {k: v for k, v in template.items() if k not in IDS}
    event.update(event_id=str(uuid.uuid4()), occurred_at=f"{ATTACK_DAY.isoformat()}T10:00:00Z")
    event.update({k: v for k, v in fields.items() if v is not None})
    return event


def _victim(platform: Platform) -> tuple[str, str, str, dict]:
    """(workspace, user id, one of their cookie ids, one of their landed lines) of the busiest user."""
    ws, user_id = _people(platform, 1)[0]
    theirs = [r for r in landed_lines(platform.landing) if r.get("workspace_id") == ws and r.get("user_id") == user_id]
    cookie = next(r["anonymous_id"] for r in theirs if r.get("anonymous_id"))
    return ws, user_id, cookie, theirs[0]


def _attack(platform: Platform) -> tuple[str, str, set[str]]:
    """Land and load the attacker's events: one naming the victim's user id as its device id, one carrying the
    victim's cookie id, one anonymous event with the attacker's own cookie. Returns (workspace, victim,
    attacker's event ids)."""
    ws, victim, cookie, template = _victim(platform)
    events = [_event(template, user_id=ATTACKER, anonymous_id=ATTACKER_COOKIE, device_id=victim, ip=ATTACKER_IP),
              _event(template, user_id=ATTACKER, anonymous_id=cookie, ip=ATTACKER_IP),
              _event(template, anonymous_id=ATTACKER_COOKIE, ip=ATTACKER_IP)]
    _land(platform, ATTACK_DAY, "events-attack.ndjson", [json.dumps(e).encode() for e in events])
    assert platform.ingest(received_dates=[ATTACK_DAY]).events_loaded == 3
    return ws, victim, {e["event_id"] for e in events}


def _app_files(platform: Platform, request_type: str, ws: str, kind: str, value: str, **extra) -> str:
    """Write a request row straight into the inbox's SQLite table, as the CRM app does."""
    path = platform.root / "privacy" / "requests.sqlite"
    Inbox(path).all()  # the inbox file and its table exist before the app writes
    request_id = f"dsr_{uuid.uuid4().hex[:16]}"
    columns = {"request_id": request_id, "request_type": request_type, "workspace_id": ws, "identity_kind": kind,
               "identity_value": value, **extra}
    with sqlite3.connect(path) as con:
        con.execute(f"INSERT INTO requests ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
                    list(columns.values()))
    return request_id


def _process(platform: Platform):
    inbox = Inbox(platform.root / "privacy" / "requests.sqlite")
    with platform.keyring() as cipher, duckdb.connect(str(platform.warehouse)) as con:
        report = process_pending(con, cipher, inbox, AuditLog.of(platform.root / "privacy" / "audit.jsonl", cipher),
                                 exports_dir=platform.root / "exports",
                                 landing_urls={"usage_events": str(platform.landing)})
    return inbox, report


def _export(inbox: Inbox, request_id: str) -> dict:
    return json.loads(Path(inbox.get(request_id)["export_path"]).read_text())


def _count(platform: Platform, sql: str, params: list | None = None) -> int:
    return platform.query(sql, params)[0][0]


# -- 14.1: a person's own request reaches only them ------------------------------------------------------


def test_forged_event_does_not_give_the_attacker_the_victims_rows(platform):
    ws, victim, attack = _attack(platform)
    victim_oracle = _oracle(platform, ws, victim)
    assert attack.isdisjoint(victim_oracle.event_ids) and len(victim_oracle.event_ids) > 10
    mine = _app_files(platform, "access", ws, "user_id", ATTACKER)
    theirs = _app_files(platform, "access", ws, "user_id", victim)
    inbox, report = _process(platform)
    assert report.count("completed") == 2
    exported = _export(inbox, mine)["tables"]
    # Exactly the attacker's three events: their two, and the anonymous one of the cookie only they use.
    assert {e["event_id"] for e in exported[WS_EVENTS]} == attack
    assert set(exported) == {WS_EVENTS}
    victims = _export(inbox, theirs)["tables"][WS_EVENTS]
    assert {e["event_id"] for e in victims} == victim_oracle.event_ids
    assert all(e["user_id"] in (victim, None) for e in victims)


def test_attackers_erasure_leaves_the_victim_whole(platform):
    ws, victim, attack = _attack(platform)
    before = _oracle(platform, ws, victim, erasure=True)
    events = _count(platform, f"SELECT count(*) FROM {WS_EVENTS}")
    victim_lines = sum(r.get("user_id") == victim for r in landed_lines(platform.landing))
    _app_files(platform, "erasure", ws, "user_id", ATTACKER)
    _, report = _process(platform)
    assert report.rows_by_table == {WS_EVENTS: 3}
    # The attacker's user key and the key of their own cookie: not the victim's, nor the contested cookie's.
    assert report.keys_destroyed == 2 and report.landing_lines_removed == 3
    assert _count(platform, f"SELECT count(*) FROM {WS_EVENTS}") == events - 3
    after = _oracle(platform, ws, victim, erasure=True)  # the victim's cookie is no longer contested: same rows
    assert (after.event_ids, after.quarantine_keys) == (before.event_ids, before.quarantine_keys)
    stats = DecryptStats()
    rows = platform.query(f"SELECT subject_ref, user_id FROM {WS_EVENTS} WHERE event_id IN (SELECT unnest(?))",
                          [sorted(before.event_ids)])
    with platform.keyring() as cipher:
        plain = cipher.decrypt(ws, [r[1] for r in rows], subject_refs=[r[0] for r in rows],
                               context="usage_events.user_id", stats=stats).to_pylist()
    assert stats.missing_key == 0 and plain.count(victim) == sum(1 for p in plain if p is not None) > 0
    assert sum(r.get("user_id") == victim for r in landed_lines(platform.landing)) == victim_lines


def test_attackers_ip_correction_changes_only_their_rows(platform):
    ws, victim, attack = _attack(platform)
    mine = _oracle(platform, ws, victim).event_ids
    before = {e["event_id"]: e["ip"] for e in _decrypted_events(platform, ws)}
    _app_files(platform, "correction", ws, "user_id", ATTACKER, field="user.device.ip_address",
               new_value="198.51.100.99")
    _, report = _process(platform)
    assert report.rows_by_table == {WS_EVENTS: 3}
    after = {e["event_id"]: e["ip"] for e in _decrypted_events(platform, ws)}
    assert {e: ip for e, ip in after.items() if ip == "198.51.100.99"}.keys() == attack
    assert {e: after[e] for e in mine} == {e: before[e] for e in mine}
    assert {e: ip for e, ip in after.items() if e not in attack} == {e: ip for e, ip in before.items() if e not in attack}


# -- 13.1: lines without a proven workspace ----------------------------------------------------------------


def test_unattributed_lines_are_never_exported_and_latin1_lines_are_erased(platform):
    ws, victim, _, template = _victim(platform)
    broken = _event(template, workspace_id="ws bad!", user_id=victim)
    latin1 = json.dumps(_event(template, user_id="usr_latin1_0001", anonymous_id="ck-latin1-0001",
                               device_id="dev-latin1-0001", ip="192.0.2.55")).encode()
    latin1 = latin1.replace(b'"properties": {', b'"properties": {"city": "Z\xfcrich", ', 1)
    _land(platform, ATTACK_DAY, "events-broken.ndjson", [json.dumps(broken).encode(), latin1])
    assert platform.ingest(received_dates=[ATTACK_DAY]).lines_quarantined == 2
    unattributed = f"SELECT count(*) FROM {WS_QUARANTINE} WHERE workspace_id = '{UNATTRIBUTED_WORKSPACE}' " \
                   "AND source_file LIKE '%events-broken.ndjson' AND user_id_bidx IS NOT NULL"
    assert _count(platform, unattributed) == 2  # both keyed to their person, the Latin-1 line included

    access = _app_files(platform, "access", ws, "user_id", victim)
    inbox, _ = _process(platform)
    quarantined = _export(inbox, access)["tables"].get(WS_QUARANTINE, [])
    assert all(q["workspace_id"] == ws for q in quarantined)
    assert not any(q["source_file"].endswith("events-broken.ndjson") for q in quarantined)

    _app_files(platform, "erasure", ws, "user_id", "usr_latin1_0001")
    _app_files(platform, "erasure", ws, "user_id", victim)
    _, report = _process(platform)
    assert report.count("completed") == 2
    assert _count(platform, unattributed.replace(" AND user_id_bidx IS NOT NULL", "")) == 0


# -- 13.5: erased people do not come back -------------------------------------------------------------------


def test_a_relanded_file_does_not_bring_an_erased_person_back(platform):
    ws, victim = _people(platform, 1)[0]
    oracle = _oracle(platform, ws, victim, erasure=True)
    theirs = {r["event_id"]: r for r in landed_lines(platform.landing)  # their loaded events, as landed
              if r.get("user_id") == victim and r.get("event_id") in oracle.event_ids}
    _app_files(platform, "erasure", ws, "user_id", victim)
    _, report = _process(platform)
    assert report.rows_by_table[WS_EVENTS] == len(oracle.event_ids)
    assert _count(platform, "SELECT count(*) FROM privacy.suppression WHERE workspace_id = ?", [ws]) >= 1

    _land(platform, dt.date(2026, 11, 26), "events-replayed.ndjson", [json.dumps(r).encode() for r in theirs.values()])
    loaded = platform.ingest(received_dates=[dt.date(2026, 11, 26)])
    assert loaded.events_loaded == len(theirs)  # the events count, as anonymous page views
    with platform.keyring() as cipher:
        key = cipher.blind_index(ws, [victim], kind=USER).to_pylist()[0]
    assert _count(platform, f"SELECT count(*) FROM {WS_EVENTS} WHERE user_id_bidx = ? OR subject_ref = ?", [key, key]) == 0
    assert _count(platform, f"SELECT count(*) FROM {WS_EVENTS} WHERE source_file LIKE '%events-replayed.ndjson' "
                            "AND user_id IS NULL AND anonymous_id IS NULL AND device_id IS NULL AND ip IS NULL "
                            "AND subject_ref IS NULL AND NOT consent_analytics") == len(theirs)


# -- 13.8: offboarding a workspace ---------------------------------------------------------------------------


def test_offboarding_erases_the_whole_workspace_through_the_cli(platform, tmp_path):
    ws = _people(platform, 1)[0][0]
    lines = landed_lines(platform.landing)
    values = lambda rows: {r.get(c) for r in rows for c in (*IDS, "ip") if isinstance(r.get(c), str)}  # noqa: E731
    unique = values([r for r in lines if r.get("workspace_id") == ws]) - values(
        [r for r in lines if r.get("workspace_id") != ws])
    assert len(unique) > 20 and _files_containing(platform.root, unique)
    others = platform.query(f"SELECT workspace_id, count(*) FROM {WS_EVENTS} WHERE workspace_id <> ? GROUP BY 1 "
                            "ORDER BY 1", [ws])
    _build(platform)  # the SQL models and the analysts' snapshot
    snapshot = platform.root / "analytics_snapshot.duckdb"
    visitor_days = "SELECT count(*) FROM analytics.visitor_days WHERE workspace_id = ?"
    with duckdb.connect(str(snapshot), read_only=True) as con:
        assert con.execute(visitor_days, [ws]).fetchall()[0][0] > 0
    access = _app_files(platform, "access", ws, "user_id", _people(platform, 1)[0][1])
    inbox, _ = _process(platform)
    export = Path(inbox.get(access)["export_path"])
    pending = _app_files(platform, "erasure", ws, "user_id", "usr_pending_0001")

    env = {**os.environ, "GTG_DATA_DIR": str(platform.root), "DAGSTER_HOME": str(tmp_path / "dagster")}
    root = Path(__file__).resolve().parents[2]

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "cli", "privacy", "offboard", *args], cwd=root, env=env,
                              capture_output=True, text=True, timeout=300)

    refused = cli(ws, "--confirm", "ws_other")
    assert refused.returncode == 2 and "repeat its id with --confirm" in refused.stderr
    done = cli(ws, "--confirm", ws)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"{ws}: offboarded;")

    assert _count(platform, f"SELECT count(*) FROM {WS_EVENTS} WHERE workspace_id = ?", [ws]) == 0
    assert _count(platform, f"SELECT count(*) FROM {WS_QUARANTINE} WHERE workspace_id = ?", [ws]) == 0
    assert platform.query(f"SELECT workspace_id, count(*) FROM {WS_EVENTS} WHERE workspace_id <> ? GROUP BY 1 "
                          "ORDER BY 1", [ws]) == others
    assert not any(r.get("workspace_id") == ws for r in landed_lines(platform.landing))
    assert _count(platform, visitor_days, [ws]) == 0
    with duckdb.connect(str(snapshot), read_only=True) as con:
        assert con.execute(visitor_days, [ws]).fetchall()[0][0] == 0
    assert not export.exists() and inbox.get(pending)["status"] == "rejected"
    with platform.keyring() as cipher:
        assert not cipher.has_workspace(ws)
    assert _files_containing(platform.root, unique) == {}
    assert _files_containing(tmp_path / "dagster", unique) == {}
    with platform.keyring() as cipher:
        audit = AuditLog.of(platform.root / "privacy" / "audit.jsonl", cipher)
    assert audit.entries()[-1]["action"] == "workspace.offboarded"


def test_a_full_mail_resync_does_not_bring_an_erased_correspondent_back(mail):  # noqa: F811 - the fixture
    for connection_id in (GMAIL, OUTLOOK, GMAIL_2):
        mail.sync(connection_id)
    account = mail.accounts[0]
    email = _correspondent(mail)
    mine = {m.id for m in account.messages.values() if (m.to[0].email if "SENT" in m.labels else m.sender.email) == email}
    recipients = [r for r in expected_recipients(account, gmail=True) if r[3] == email]
    inbox = Inbox(mail.root / "privacy" / "requests.sqlite")
    inbox.submit(Request("erasure", "ws_0001", "email", email))
    with mail.keyring() as cipher, duckdb.connect(str(mail.warehouse)) as con:
        process_pending(con, cipher, inbox, AuditLog.of(mail.root / "privacy" / "audit.jsonl", cipher),
                        exports_dir=mail.root / "exports", landing_urls={})
    held = {r[0] for r in mail.held("raw_gmail.gmail_messages", GMAIL)}
    assert held == set(account.messages) - mine and mine

    account.expire_cursors()  # the provider still has everything: the next sync lists it all again
    report = mail.sync(GMAIL)
    assert report.streams["gmail_messages"].full_resync and report.streams["gmail_contacts"].full_resync
    assert report.streams["gmail_messages"].suppressed == len(mine) + len(recipients)
    assert report.streams["gmail_contacts"].suppressed == 1
    assert {r[0] for r in mail.held("raw_gmail.gmail_messages", GMAIL)} == held
    assert [r for r in mail.recipients(GMAIL_RECIPIENTS, GMAIL) if r[3] == email] == []
    contacts = mail.decrypted("raw_gmail.gmail_contacts", GMAIL, "primary_email", key="contact_id")
    assert email not in contacts.values() and len(contacts) == len(account.contacts) - 1


def test_offboarding_removes_the_workspaces_mail_and_connections(mail):  # noqa: F811 - the fixture
    for connection_id in (GMAIL, OUTLOOK, GMAIL_2):
        mail.sync(connection_id)
    tables = [f"{d}.{t}" for d, t in mail.query("SELECT table_schema, table_name FROM information_schema.columns "
                                                 "WHERE column_name = 'connection_id' AND table_schema LIKE 'raw_%' "
                                                 "AND table_schema NOT LIKE '%staging'")]
    per_ws = "SELECT workspace_id, count(*) FROM {} GROUP BY 1 ORDER BY 1"
    before = {t: dict(mail.query(per_ws.format(t))) for t in tables}
    assert all(before[t].get("ws_0001") for t in tables) and len(tables) == 6
    with mail.keyring() as cipher:
        report = offboard_workspace("ws_0001", warehouse_path=mail.warehouse, cipher=cipher,
                                    inbox=Inbox(mail.root / "privacy" / "requests.sqlite"),
                                    audit=AuditLog.of(mail.root / "privacy" / "audit.jsonl", cipher), landing_urls={},
                                    exports_dir=mail.root / "exports", registry=mail.registry)
        assert not cipher.has_workspace("ws_0001") and cipher.has_workspace("ws_0002")
    assert report.connections_removed == 2
    assert {t: report.rows_by_table[t] for t in tables} == {t: before[t]["ws_0001"] for t in tables}
    assert {t: dict(mail.query(per_ws.format(t))) for t in tables} == {
        t: {w: n for w, n in before[t].items() if w != "ws_0001"} for t in tables}
    assert [c.workspace_id for c in mail.registry.list(statuses=STATUSES)] == ["ws_0002"]
