"""The privacy engine on Meta's tables with no Meta-specific privacy code: nothing a lead typed is readable on
disk, a lead erased by e-mail leaves no byte of it behind, disconnecting erases the account's rows, and the
retention rules (37 months of insights, 180 days of leads) delete what they govern."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from assets.privacy import POLICY
from pipelines.connections.disconnect import disconnect
from pipelines.facebook.owner import STATE_KEY, owned_connections, owner_index
from pipelines.privacy.audit import AuditLog
from pipelines.privacy.dsr import process_pending
from pipelines.privacy.requests import Inbox, Request
from pipelines.privacy.retention import run_rule
from tests.conftest import found_in_files
from tests.facebook.conftest import RAW, TOKYO, WEST, AdsPlatform, ads  # noqa: F401 - ads: the fixture

TABLES = ("ad_accounts", "campaigns", "ad_sets", "ads", "ad_creatives", "ad_insights", "ad_insight_actions",
          "lead_forms", "leads")


@pytest.fixture
def synced(ads: AdsPlatform) -> AdsPlatform:
    for connection_id in (WEST, TOKYO):
        ads.sync(connection_id)
    return ads


def _run(ads: AdsPlatform, inbox: Inbox):
    with ads.keyring() as cipher, duckdb.connect(str(ads.warehouse)) as con:
        return process_pending(con, cipher, inbox, AuditLog.of(ads.root / "privacy" / "audit.jsonl", cipher),
                               exports_dir=ads.root / "exports", landing_urls={})



def _typed(lead) -> set[str]:
    return {value for value in lead.answers.values()} - {"under 1k", "1k to 10k", "not sure yet"}  # shared answers


def test_nothing_a_lead_typed_and_no_token_is_readable_on_disk(synced: AdsPlatform) -> None:
    needles = {synced.account(c).token for c in (WEST, TOKYO)}
    for connection_id in (WEST, TOKYO):
        for lead in synced.account(connection_id).leads.values():
            needles |= _typed(lead)
    assert len(synced.decrypted_leads(WEST)) == 8  # loaded, then searched for
    assert found_in_files(synced.root, needles) == {}


def test_a_lead_erased_by_email_leaves_no_byte_behind(synced: AdsPlatform) -> None:
    account = synced.account(WEST)
    lead = sorted(account.leads.values(), key=lambda l: l.id)[0]
    before = synced.decrypted_leads(WEST)
    inbox = Inbox(synced.root / "privacy" / "requests.sqlite")
    inbox.submit(Request("erasure", "ws_0001", "email", lead.answers["email"]))
    report = _run(synced, inbox)
    assert report.rows_by_table == {f"{RAW}.leads": 1} and report.keys_destroyed >= 1
    assert synced.decrypted_leads(WEST) == {k: v for k, v in before.items() if k != lead.id}
    assert found_in_files(synced.root, _typed(lead)) == {}
    synced.sync(WEST)  # offered again by Meta: suppressed, not loaded back
    assert lead.id not in synced.decrypted_leads(WEST)


def test_disconnecting_an_ad_account_erases_every_row_synced_from_it(synced: AdsPlatform) -> None:
    inbox = Inbox(synced.root / "privacy" / "requests.sqlite")
    disconnect(synced.registry, inbox, WEST, requested_by="test")
    report = _run(synced, inbox)
    assert report.rows_by_table[f"{RAW}.ad_insights"] == len(synced.account(WEST).insights)
    for table in TABLES:
        assert synced.query(f"SELECT count(*) FROM {RAW}.{table} WHERE connection_id = ?", [WEST]) == [(0,)], table
    assert synced.query(f"SELECT count(*) FROM {RAW}.ad_insights WHERE connection_id = ?", [TOKYO]) == [
        (len(synced.account(TOKYO).insights),)]
    assert len(synced.decrypted_leads(TOKYO)) == 8
    assert found_in_files(synced.root, {synced.account(WEST).token}) == {}


def test_retention_deletes_leads_after_180_days_and_insights_after_37_months(synced: AdsPlatform) -> None:
    rules = {r.table: r for r in POLICY.rules if r.table.startswith(f"{RAW}.")}
    assert set(rules) == {f"{RAW}.{t}" for t in TABLES}
    assert (rules[f"{RAW}.leads"].keep_days, rules[f"{RAW}.ad_insights"].keep_days) == (180, 1127)
    newest_lead = max(l.created for c in (WEST, TOKYO) for l in synced.account(c).leads.values())
    first_day = min(synced.account(c).first_day for c in (WEST, TOKYO))
    with synced.keyring() as cipher, duckdb.connect(str(synced.warehouse)) as con:
        audit = AuditLog.of(synced.root / "privacy" / "audit.jsonl", cipher)
        kept = run_rule(con, rules[f"{RAW}.leads"], cipher, audit, newest_lead + dt.timedelta(days=179))
        gone = run_rule(con, rules[f"{RAW}.leads"], cipher, audit, newest_lead + dt.timedelta(days=181))
        day_after = dt.datetime.combine(first_day, dt.time(12), dt.timezone.utc) + dt.timedelta(days=1128)
        insights = run_rule(con, rules[f"{RAW}.ad_insights"], cipher, audit, day_after)
    assert (kept.rows_expired, gone.rows_expired) == (0, 16)
    assert insights.rows_expired == sum(1 for c in (WEST, TOKYO) for (_, d) in synced.account(c).insights if d == first_day)


def _signed(user_id: str) -> str:
    """Meta's signed_request for `user_id`, signed with the app secret."""
    payload = base64.urlsafe_b64encode(json.dumps({"algorithm": "HMAC-SHA256", "user_id": user_id, "issued_at": int(
        dt.datetime.now(dt.timezone.utc).timestamp())}).encode()).decode().rstrip("=")
    signature = base64.urlsafe_b64encode(hmac.new(b"app-secret", payload.encode(), hashlib.sha256).digest()).decode()
    return f"{signature.rstrip('=')}.{payload}"


def _callback(ads: AdsPlatform, signed_request: str) -> subprocess.CompletedProcess:
    """`cli privacy provider-deletion`, as Meta's data-deletion callback files it."""
    env = {**os.environ, "GTG_DATA_DIR": str(ads.root), "GTG_META_APP_SECRET": "app-secret", "GTG_ENV": "sandbox"}
    return subprocess.run([sys.executable, "-m", "cli", "privacy", "provider-deletion", "--workspace", "ws_0001",
                           "--meta-signed-request", signed_request], cwd=Path(__file__).resolve().parents[2], env=env,
                          capture_output=True, text=True, timeout=300)


def test_metas_deletion_callback_for_whoever_connected_an_account_erases_what_it_brought(synced: AdsPlatform) -> None:
    owner = synced.account(WEST).owner_user_id
    with synced.keyring() as cipher:
        assert synced.registry.get(WEST).sync_state[STATE_KEY] == owner_index(cipher, "ws_0001", owner)
        assert [c.connection_id for c in owned_connections(synced.registry, cipher, owner)] == [WEST]
        assert owned_connections(synced.registry, cipher, "10999999999999") == []
    leads = synced.account(WEST).leads.values()
    signed = _signed(owner)
    answer = _callback(synced, signed)
    assert answer.returncode == 0, answer.stderr
    assert owner not in answer.stdout + answer.stderr
    assert synced.registry.get(WEST).status == "revoked" and synced.registry.get(TOKYO).status == "active"
    inbox = Inbox(synced.root / "privacy" / "requests.sqlite")
    report = _run(synced, inbox)
    assert report.rows_by_table[f"{RAW}.leads"] == 8
    for table in TABLES:
        assert synced.query(f"SELECT count(*) FROM {RAW}.{table} WHERE connection_id = ?", [WEST]) == [(0,)], table
    assert len(synced.decrypted_leads(TOKYO)) == 8
    assert found_in_files(synced.root, {synced.account(WEST).token, owner} | {v for lead in leads for v in _typed(lead)}) == {}
    again = _callback(synced, signed)  # Meta delivers it again: the same answer, nothing new to do
    assert again.returncode == 0 and json.loads(again.stdout) == json.loads(answer.stdout)
    assert _run(synced, inbox).rows_by_table == {}
