"""Attacks through the request inbox the CRM app writes (rows inserted straight into requests.sqlite, as the
app does) and through the Meta callback: paths the app could steer, values echoed into errors, a forged
audit chain, stale or repeated callbacks, the reserved `_unattributed` workspace."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import sqlite3
from pathlib import Path

import duckdb
import pytest

from pipelines.privacy.audit import AuditLog
from pipelines.privacy.dsr import process_pending
from pipelines.privacy.provider_requests import meta_deletion_request
from pipelines.privacy.requests import Inbox, Request, RequestError
from pipelines.workspaces import UNATTRIBUTED_WORKSPACE
from tests.conftest import Platform
from tests.privacy.test_requests import _people, loaded, platform  # noqa: F401 - the loaded platform fixtures

SECRET = "meta-app-secret"
NOW = dt.datetime(2026, 11, 25, 12, tzinfo=dt.timezone.utc)


def _person(platform: Platform) -> tuple[str, str]:
    return _people(platform, 1)[0]


def _app_writes(platform: Platform, **row) -> None:
    """What the CRM app does: an INSERT into the inbox file, no validation on its side."""
    Inbox(platform.root / "privacy" / "requests.sqlite")  # the schema
    with sqlite3.connect(platform.root / "privacy" / "requests.sqlite") as con:
        con.execute(f"INSERT INTO requests ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})", list(row.values()))


def _process(platform: Platform, now: dt.datetime | None = None):
    inbox = Inbox(platform.root / "privacy" / "requests.sqlite")
    with platform.keyring() as cipher, duckdb.connect(str(platform.warehouse)) as con:
        audit = AuditLog.of(platform.root / "privacy" / "audit.jsonl", cipher)
        report = process_pending(con, cipher, inbox, audit, exports_dir=platform.root / "exports",
                                 landing_urls={"usage_events": str(platform.landing)}, now=now)
    return inbox, audit, report


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def test_request_ids_that_are_paths_are_rejected_and_write_nothing_outside_exports(platform: Platform, tmp_path: Path) -> None:
    ws, user_id = _person(platform)
    outside = tmp_path / "outside"
    outside.mkdir()
    hostile = ["../../x", "../exports_evil", str(outside / "abs"), "dsr_0123456789abcdef/../../y", "dsr_0123456789ABCDEF"]
    for request_id in hostile:
        _app_writes(platform, request_id=request_id, request_type="access", workspace_id=ws,
                    identity_kind="user_id", identity_value=user_id)
    files_before = _files(tmp_path)
    inbox, _, report = _process(platform)
    assert report.count("rejected") == len(hostile) and report.count("completed") == 0
    assert {inbox.get(r)["status_detail"] for r in hostile} == {"request_id does not match dsr_ and 16 lowercase hex digits"}
    with sqlite3.connect(platform.root / "privacy" / "requests.sqlite") as con:  # the plaintext is cleared anyway
        assert con.execute("SELECT DISTINCT identity_value FROM requests").fetchall() == [(None,)]
    assert _files(tmp_path) - files_before == {"data/privacy/audit.jsonl"}
    assert not (platform.root / "exports").exists() or list((platform.root / "exports").iterdir()) == []
    assert list(outside.iterdir()) == []


def test_an_export_path_written_by_the_app_is_never_deleted(platform: Platform, tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    ws, user_id = _person(platform)
    inbox = Inbox(platform.root / "privacy" / "requests.sqlite")
    rid = inbox.submit(Request("access", ws, "user_id", user_id))
    _, _, first = _process(platform, now=NOW)
    export = platform.root / "exports" / f"{rid}.json"
    assert first.count("completed") == 1 and export.is_file()
    # The app (or whoever can write the inbox) points the stored path at another file ...
    with sqlite3.connect(platform.root / "privacy" / "requests.sqlite") as con:
        con.execute("UPDATE requests SET export_path = ? WHERE request_id = ?", (str(victim), rid))
    _app_writes(platform, request_id="dsr_00000000000000aa", request_type="access", workspace_id=ws,
                identity_kind="user_id", status="completed", export_path=str(victim),
                completed_at="2026-01-01T00:00:00.000000Z")
    # ... then the 30-day clean-up and a later erasure of the person run: only the platform's own export goes.
    inbox.submit(Request("erasure", ws, "user_id", user_id))
    _, _, late = _process(platform, now=NOW + dt.timedelta(days=31))
    assert victim.read_text() == "keep me"
    # Both rows were due for clean-up: the real export is gone; the forged row's derived file never existed.
    assert not export.exists() and late.exports_removed == 1


def test_a_rejected_correction_never_quotes_what_it_was_given(platform: Platform) -> None:
    ws, user_id = _person(platform)
    field, value = "ann.private@example.com", "kept-out-of-logs@example.com"
    _app_writes(platform, request_id="dsr_0000000000000c01", request_type="correction", workspace_id=ws,
                identity_kind="user_id", identity_value=user_id, field=field, new_value=value)
    _app_writes(platform, request_id="dsr_0000000000000c02", request_type=field, workspace_id=ws,
                identity_kind=value, identity_value=user_id)
    inbox, audit, report = _process(platform)
    assert report.count("rejected") == 2
    assert inbox.get("dsr_0000000000000c01")["status_detail"] == "field is not a data category held in any table"
    assert inbox.get("dsr_0000000000000c02")["status_detail"].startswith("unknown request type; expected one of")
    stored = (platform.root / "privacy" / "audit.jsonl").read_bytes() + (platform.root / "privacy" / "requests.sqlite").read_bytes()
    for secret in (field, value, user_id):
        assert secret.encode() not in stored
    assert audit.verify().intact


def test_the_audit_chain_cannot_be_rechained_without_the_keyring(platform: Platform) -> None:
    ws, user_id = _person(platform)
    inbox = Inbox(platform.root / "privacy" / "requests.sqlite")
    for kind in ("access", "access", "erasure"):
        inbox.submit(Request(kind, ws, "user_id", user_id))
    _, audit, _ = _process(platform)
    entries = audit.entries()
    assert [e["action"] for e in entries] == ["dsr.access", "dsr.access", "dsr.erasure"] and audit.verify().intact
    # Drop the second entry and recompute the chain the way anyone could without the key (plain SHA-256).
    forged, prev = [], "0" * 64
    for seq, entry in enumerate([entries[0], entries[2]], start=1):
        entry = {**entry, "seq": seq, "prev": prev}
        body = {k: v for k, v in entry.items() if k != "hash"}
        entry["hash"] = prev = hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
        forged.append(json.dumps(entry, sort_keys=True))
    audit.path.write_text("\n".join(forged) + "\n")
    assert (audit.verify().intact, audit.verify().broken_at) == (False, 1)
    # Keyed with another key (another keyring's) the forgery fails the same way.
    key = hmac.new(b"guess", b"", hashlib.sha256).digest()
    assert not AuditLog(audit.path, key).verify().intact


def _signed(payload: dict | str, secret: str = SECRET) -> str:
    body = payload if isinstance(payload, str) else json.dumps(payload)
    encoded = base64.urlsafe_b64encode(body.encode()).decode().rstrip("=")
    signature = base64.urlsafe_b64encode(hmac.new(secret.encode(), encoded.encode(), hashlib.sha256).digest())
    return f"{signature.decode().rstrip('=')}.{encoded}"


def test_meta_callback_checks_the_signature_before_reading_the_payload() -> None:
    deep = "[" * 5000 + "]" * 5000
    with pytest.raises(RequestError, match="signature does not match the app secret"):
        meta_deletion_request(_signed(deep, "attacker"), SECRET, "ws_1", now=NOW)
    with pytest.raises(RequestError, match="payload is malformed"):  # signed (only Meta could): still no crash
        meta_deletion_request(_signed(deep), SECRET, "ws_1", now=NOW)
    with pytest.raises(RequestError, match="malformed"):
        meta_deletion_request("x" * 17000 + "." + "y", SECRET, "ws_1", now=NOW)


def test_meta_callback_refuses_stale_requests_and_answers_repeats_once(tmp_path: Path) -> None:
    payload = {"algorithm": "HMAC-SHA256", "user_id": "fb_42"}
    old = _signed({**payload, "issued_at": int(dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc).timestamp())})
    with pytest.raises(RequestError, match="not issued within the last 24 hours"):
        meta_deletion_request(old, SECRET, "ws_1", now=NOW)
    with pytest.raises(RequestError, match="no issued_at"):
        meta_deletion_request(_signed(payload), SECRET, "ws_1", now=NOW)
    fresh = _signed({**payload, "issued_at": int(NOW.timestamp()) - 60})
    inbox = Inbox(tmp_path / "requests.sqlite")
    answers = [inbox.submit_once(meta_deletion_request(fresh, SECRET, "ws_1", now=NOW)) for _ in range(3)]
    assert len(set(answers)) == 1 and len(inbox.all()) == 1
    codes = {meta_deletion_request(fresh, SECRET, "ws_1", now=NOW).confirmation_code for _ in range(3)}
    assert len(codes) == 1 and len(next(iter(codes))) == 16
    other = _signed({**payload, "issued_at": int(NOW.timestamp()) - 30})  # another callback: another request
    assert inbox.submit_once(meta_deletion_request(other, SECRET, "ws_1", now=NOW)) != answers[0]


def test_the_unattributed_workspace_is_reserved(platform: Platform) -> None:
    inbox = Inbox(platform.root / "privacy" / "requests.sqlite")
    with pytest.raises(RequestError, match="reserved"):
        inbox.submit(Request("access", UNATTRIBUTED_WORKSPACE, "user_id", "u_1"))
    _app_writes(platform, request_id="dsr_00000000000000b1", request_type="access", workspace_id=UNATTRIBUTED_WORKSPACE,
                identity_kind="user_id", identity_value="u_1")
    inbox, _, report = _process(platform)
    assert report.count("rejected") == 1 and not (platform.root / "exports").exists()
    assert inbox.get("dsr_00000000000000b1")["status_detail"] == (
        f"workspace_id {UNATTRIBUTED_WORKSPACE} is reserved for lines without a workspace")


def test_a_rejected_request_leaves_no_value_in_dagster_storage(platform: Platform, tmp_path: Path) -> None:
    from dagster import DagsterInstance, Definitions

    from assets.privacy import data_subject_requests, requests_job
    from tests.security.conftest import privacy_resources

    ws, user_id = _person(platform)
    field, value = "bob.private@example.com", "+4915112345678"
    _app_writes(platform, request_id="dsr_0000000000000d01", request_type="correction", workspace_id=ws,
                identity_kind="user_id", identity_value=user_id, field=field, new_value=value)
    _app_writes(platform, request_id="dsr_0000000000000d02", request_type=field, workspace_id=value,
                identity_kind="email", identity_value=field)
    defs = Definitions(assets=[data_subject_requests], jobs=[requests_job], resources=privacy_resources(platform))
    home = tmp_path / "dagster_home"
    home.mkdir()
    with DagsterInstance.local_temp(str(home)) as instance:
        result = defs.resolve_job_def("data_subject_requests_job").execute_in_process(instance=instance)
    assert result.success
    meta = result.get_asset_materialization_events()[0].materialization.metadata
    assert meta["requests_rejected"].value == 2 and meta["by_type"].value == {"correction": 1, "invalid": 1}
    for root in (home, platform.root):  # (the landed files hold the user id by nature: not searched)
        for path in (p for p in root.rglob("*") if p.is_file() and "landing" not in p.parts):
            data = path.read_bytes()
            assert not any(secret.encode() in data for secret in (field, value, user_id)), path
