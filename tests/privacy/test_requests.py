"""Data-subject requests on a real warehouse: access exports, corrections, erasure that leaves no trace on
disk, consent changes, provider callbacks and bad requests."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import shutil
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pytest

from pipelines.privacy.audit import AuditLog
from pipelines.privacy.consent import identified_after_withdrawal
from pipelines.privacy.dsr import foreign_rows_in_exports, process_pending
from pipelines.privacy.provider_requests import meta_deletion_request
from pipelines.privacy.requests import Inbox, Request, RequestError
from pipelines.workspaces import UNATTRIBUTED_WORKSPACE
from tests.conftest import Platform, landed_lines

WS_EVENTS = "raw_events.usage_events"
WS_QUARANTINE = "raw_events.usage_events_quarantine"
IDS = ("user_id", "anonymous_id", "device_id")
INDEXES = tuple(f"{c}_bidx" for c in IDS)


@pytest.fixture(scope="module")
def loaded(tmp_path_factory) -> Platform:
    platform = Platform(tmp_path_factory.mktemp("dsr") / "data")
    platform.generate()
    platform.ingest()
    return platform


@pytest.fixture
def platform(loaded, tmp_path) -> Platform:
    copy = Platform(tmp_path / "data")
    shutil.copytree(loaded.root, copy.root)
    return copy


def _process(platform: Platform, *requests: Request):
    inbox = Inbox(platform.root / "privacy" / "requests.sqlite")
    ids = [inbox.submit(r) for r in requests]
    with platform.keyring() as cipher, duckdb.connect(str(platform.warehouse)) as con:
        report = process_pending(con, cipher, inbox, AuditLog.of(platform.root / "privacy" / "audit.jsonl", cipher),
                                 exports_dir=platform.root / "exports",
                                 landing_urls={"usage_events": str(platform.landing)})
    return inbox, ids, report


def _people(platform: Platform, n: int) -> list[tuple[str, str]]:
    """The n (workspace, user id) pairs with the most landed events."""
    counts = Counter((r.get("workspace_id"), r.get("user_id")) for r in landed_lines(platform.landing)
                     if isinstance(r.get("user_id"), str) and isinstance(r.get("workspace_id"), str))
    return [pair for pair, _ in counts.most_common(n)]


@dataclass
class Oracle:
    """Who holds what, computed the slow way: every row decrypted, identities stitched in Python."""

    event_ids: set[str]
    quarantine_keys: set[tuple[str, int]]
    values: set[str]  # every plaintext identifier and IP of the person


def _decrypted_events(platform: Platform, ws: str) -> list[dict]:
    rows = platform.query(f"SELECT event_id, subject_ref, user_id, anonymous_id, device_id, ip FROM {WS_EVENTS} "
                          "WHERE workspace_id = ?", [ws])
    out = []
    with platform.keyring() as cipher:
        for event_id, ref, *cts in rows:
            plain = [cipher.decrypt(ws, [ct], subject_refs=[ref], context=f"usage_events.{c}").to_pylist()[0]
                     if ct is not None else None for c, ct in zip((*IDS, "ip"), cts)]
            out.append({"event_id": event_id, "subject_ref": ref, **dict(zip((*IDS, "ip"), plain))})
    return out


USER, COOKIE, DEVICE = "user.unique_id", "user.device.cookie_id", "user.device.device_id"
KINDS = dict(zip(IDS, (USER, COOKIE, DEVICE)))


def _subject(event: dict) -> tuple[str, str] | None:
    """(column, value) of an event's data subject: its first identifier."""
    return next(((c, event[c]) for c in IDS if event[c]), None)


def _oracle(platform: Platform, ws: str, user_id: str, erasure: bool = False) -> Oracle:
    """The identity-resolution rule of the README, the slow way: the user's own events, plus anonymous events
    whose subject is a cookie or device id seen on them and on no other user's events; quarantined lines of
    those subjects, and (erasure only) lines without a workspace holding the user id."""
    events = _decrypted_events(platform, ws)
    owned = [e for e in events if e["user_id"] == user_id]
    trackers = {(c, e[c]) for e in owned for c in IDS[1:] if e[c]}
    contested = {(c, e[c]) for e in events if e["user_id"] not in (None, user_id) for c in IDS[1:] if e[c]}
    stitched = trackers - contested
    mine = owned + [e for e in events if e["user_id"] is None and _subject(e) in stitched]
    with platform.keyring() as cipher:
        refs = [cipher.blind_index(ws, [v], kind=KINDS[c]).to_pylist()[0] for c, v in {("user_id", user_id), *stitched}]
        unattributed = cipher.blind_index(UNATTRIBUTED_WORKSPACE, [user_id], kind=USER).to_pylist()
    quarantine = set(platform.query(f"SELECT source_file, source_line FROM {WS_QUARANTINE} WHERE workspace_id = ? "
                                    "AND subject_ref IN (SELECT unnest(?))", [ws, refs]))
    if erasure:
        quarantine |= set(platform.query(
            f"SELECT source_file, source_line FROM {WS_QUARANTINE} WHERE workspace_id = ? AND "
            "(user_id_bidx IN (SELECT unnest(?)) OR subject_ref IN (SELECT unnest(?)))",
            [UNATTRIBUTED_WORKSPACE, unattributed, unattributed]))
    return Oracle({e["event_id"] for e in mine}, quarantine,
                  {user_id} | {v for _, v in stitched} | {e["ip"] for e in mine if e["ip"]})


def _files_containing(root: Path, values: set[str]) -> dict[str, list[str]]:
    """Every file under `root` whose bytes contain one of `values` as UTF-8, Latin-1 or UTF-16 (either byte
    order); gzip files are searched decompressed too."""
    import gzip

    found: dict[str, list[str]] = {}
    needles = {v: {v.encode(enc) for enc in ("utf-8", "latin-1", "utf-16-le", "utf-16-be")
                   if enc != "latin-1" or max(map(ord, v), default=0) < 256} for v in values}
    for path in root.rglob("*"):
        if not path.is_file():
            continue
        data = path.read_bytes()
        if path.suffix == ".gz":
            data += gzip.decompress(data)
        hits = [v for v, encoded in needles.items() if any(n in data for n in encoded)]
        if hits:
            found[str(path.relative_to(root))] = hits
    return found


def test_access_export_holds_exactly_the_persons_rows_decrypted(platform):
    ws, user_id = _people(platform, 1)[0]
    oracle = _oracle(platform, ws, user_id)
    inbox, (rid,), report = _process(platform, Request("access", ws, "user_id", user_id))
    assert report.count("completed") == 1
    stored = inbox.get(rid)
    export = json.loads(Path(stored["export_path"]).read_text())
    events = export["tables"][WS_EVENTS]
    assert {e["event_id"] for e in events} == oracle.event_ids
    assert {(q["source_file"], q["source_line"]) for q in export["tables"].get(WS_QUARANTINE, [])} == oracle.quarantine_keys
    truth = {e["event_id"]: e for e in _decrypted_events(platform, ws)}
    assert all(e[c] == truth[e["event_id"]][c] for e in events for c in (*IDS, "ip"))
    assert not any(k.endswith("_bidx") or k == "subject_ref" for e in events for k in e)
    assert stored["status"] == "completed" and Path(stored["export_path"]).stat().st_mode & 0o777 == 0o600
    assert stored["deadline"].startswith((dt.datetime.fromisoformat(stored["received_at"].replace("Z", "+00:00"))
                                          + dt.timedelta(days=30)).date().isoformat())
    # The check behind "visible only within your workspace": this export holds only its workspace's rows, and a
    # row of another workspace slipped into it is counted.
    exports_dir = platform.root / "exports"
    assert foreign_rows_in_exports(inbox, exports_dir) == (1, {})
    events[0]["workspace_id"], events[1]["workspace_id"] = "ws_other", None
    Path(stored["export_path"]).write_text(json.dumps(export))
    assert foreign_rows_in_exports(inbox, exports_dir) == (1, {rid: 2})


def test_erasure_leaves_no_byte_of_the_person_and_keeps_everyone_else(platform):
    people = _people(platform, 2)
    (ws, user_id), (other_ws, other_id) = people
    oracle = _oracle(platform, ws, user_id, erasure=True)
    other = _oracle(platform, other_ws, other_id, erasure=True)
    # The person's values that no other line carries (a line without any of their identifiers could be
    # anyone's, whatever IP it holds).
    identifiers = oracle.values & {v for r in landed_lines(platform.landing) for c in IDS
                                   if r.get("user_id") == user_id for v in [r.get(c)] if isinstance(v, str)}
    unique = oracle.values - {v for r in landed_lines(platform.landing) if not identifiers & {r.get(c) for c in IDS}
                              for v in r.values() if isinstance(v, str)}
    assert user_id in unique and len(unique) >= 3
    assert _files_containing(platform.root, unique)  # before: in the landed files
    events_before = platform.query(f"SELECT count(*) FROM {WS_EVENTS}")[0][0]
    quarantine_before = platform.query(f"SELECT count(*) FROM {WS_QUARANTINE}")[0][0]
    _process(platform, Request("access", ws, "user_id", user_id))  # an earlier export must go too

    inbox, (rid,), report = _process(platform, Request("erasure", ws, "user_id", user_id))

    assert report.rows_by_table == {WS_EVENTS: len(oracle.event_ids), **(
        {WS_QUARANTINE: len(oracle.quarantine_keys)} if oracle.quarantine_keys else {})}
    assert report.exports_removed == 1 and report.keys_destroyed >= 1 and report.landing_lines_removed > 0
    assert platform.query(f"SELECT count(*) FROM {WS_EVENTS}")[0][0] == events_before - len(oracle.event_ids)
    assert platform.query(f"SELECT count(*) FROM {WS_QUARANTINE}")[0][0] == quarantine_before - len(oracle.quarantine_keys)
    assert _files_containing(platform.root, unique) == {}
    assert _oracle(platform, other_ws, other_id, erasure=True) == other  # the other person is intact and readable
    assert inbox.get(rid)["status"] == "completed"
    with platform.keyring() as cipher:
        audit = AuditLog.of(platform.root / "privacy" / "audit.jsonl", cipher)
    assert audit.verify().intact and audit.entries()[-1]["action"] == "dsr.erasure"


def test_erasure_of_many_people_in_one_batch(platform):
    people = _people(platform, 5)
    oracles = [_oracle(platform, ws, uid, erasure=True) for ws, uid in people]
    expected = len(set().union(*(o.event_ids for o in oracles)))
    before = platform.query(f"SELECT count(*) FROM {WS_EVENTS}")[0][0]
    _, ids, report = _process(platform, *(Request("erasure", ws, "user_id", uid) for ws, uid in people))
    assert report.count("completed") == 5
    assert platform.query(f"SELECT count(*) FROM {WS_EVENTS}")[0][0] == before - expected


def test_correction_rewrites_the_field_everywhere(platform):
    ws, user_id = _people(platform, 1)[0]
    oracle = _oracle(platform, ws, user_id)
    _process(platform, Request("correction", ws, "user_id", user_id, field="user.device.ip_address",
                               new_value="198.51.100.77"))
    after = {e["event_id"]: e for e in _decrypted_events(platform, ws)}
    assert {after[e]["ip"] for e in oracle.event_ids} == {"198.51.100.77"}
    with platform.keyring() as cipher:
        new_bidx = cipher.blind_index(ws, ["198.51.100.77"], kind="user.device.ip_address").to_pylist()[0]
    assert platform.query(f"SELECT count(*) FROM {WS_EVENTS} WHERE ip_bidx = ?", [new_bidx])[0][0] == len(oracle.event_ids)
    others = [e for e in after.values() if e["event_id"] not in oracle.event_ids]
    assert others and all(e["ip"] != "198.51.100.77" for e in others)


def test_bad_requests_get_a_clear_error_and_change_nothing(platform):
    ws, user_id = _people(platform, 1)[0]
    inbox = Inbox(platform.root / "privacy" / "requests.sqlite")
    with pytest.raises(RequestError, match="email identifying the person is malformed"):
        inbox.submit(Request("access", ws, "email", "not-an-email"))
    with pytest.raises(RequestError, match="unknown request type; expected one of"):
        inbox.submit(Request("forget", ws, "user_id", user_id))
    with pytest.raises(RequestError, match="a consent request needs `purposes`"):
        inbox.submit(Request("consent", ws, "user_id", user_id, purposes={"telepathy": False}))
    assert inbox.all() == []
    snapshot = platform.query(f"SELECT * EXCLUDE (_dlt_load_id) FROM {WS_EVENTS} ORDER BY event_id")
    _, (rid,), report = _process(platform, Request("erasure", "ws_nobody_knows", "user_id", user_id))
    assert report.count("rejected") == 1
    assert inbox.get(rid)["status_detail"] == "unknown workspace: no data is held for this workspace id"
    assert platform.query(f"SELECT * EXCLUDE (_dlt_load_id) FROM {WS_EVENTS} ORDER BY event_id") == snapshot
    log = (platform.root / "privacy" / "audit.jsonl").read_text()
    assert user_id not in log and "dsr.erasure.rejected" in log


def test_meta_deletion_callback_becomes_an_erasure(platform):
    payload = base64.urlsafe_b64encode(json.dumps(
        {"algorithm": "HMAC-SHA256", "issued_at": 1764000000, "user_id": "fb_123"}).encode()).decode().rstrip("=")
    signature = base64.urlsafe_b64encode(hmac.new(b"app-secret", payload.encode(), hashlib.sha256).digest()).decode()
    issued = dt.datetime.fromtimestamp(1764000000, dt.timezone.utc)
    request = meta_deletion_request(f"{signature.rstrip('=')}.{payload}", "app-secret", _people(platform, 1)[0][0],
                                    now=issued + dt.timedelta(minutes=1))
    assert (request.request_type, request.identity_kind, request.source) == ("erasure", "facebook_user_id", "meta_data_deletion")
    with pytest.raises(RequestError, match="does not match the app secret"):
        meta_deletion_request(f"{signature}.{payload}", "another-secret", "ws", now=issued)
    inbox, (rid,), report = _process(platform, request)
    assert inbox.get(rid)["status"] == "completed" and report.rows_by_table == {}


def _later_id(i: int) -> str:
    return f"00000000-0000-4000-8000-{i:012d}"


def test_opted_out_visitor_is_loaded_without_identifiers(platform):
    ws, user_id = _people(platform, 2)[0]
    other_ws, other_id = _people(platform, 2)[1]
    loaded = {row[0] for row in platform.query(f"SELECT event_id FROM {WS_EVENTS} WHERE consent_analytics")}
    lines = [r for r in landed_lines(platform.landing) if r.get("event_id") in loaded
             and (r.get("workspace_id"), r.get("user_id")) in ((ws, user_id), (other_ws, other_id))]
    lines = list({r["event_id"]: r for r in lines}.values())  # landed duplicates once
    inbox, (rid,), _ = _process(platform, Request("consent", ws, "user_id", user_id,
                                                   purposes={"analytics": False, "ads": False}))
    assert inbox.get(rid)["status_detail"] == "consent recorded for analytics=refused, ads=refused"
    # Rows already held: the ads flag follows at once.
    held = _oracle(platform, ws, user_id).event_ids
    assert platform.query(f"SELECT count(*) FROM {WS_EVENTS} WHERE event_id IN (SELECT unnest(?)) AND consent_ads",
                          [list(held)])[0][0] == 0

    later = platform.landing / "dt=2026-11-25"
    later.mkdir()
    fresh = [{**r, "event_id": _later_id(i), "occurred_at": "2026-11-25T10:00:00Z"} for i, r in enumerate(lines)]
    (later / "events-00000.ndjson").write_text("".join(json.dumps(r) + "\n" for r in fresh))
    report = platform.ingest(received_dates=[dt.date(2026, 11, 25)])
    assert report.events_loaded == len(fresh)
    rows = platform.query(f"SELECT event_id, user_id IS NULL AND anonymous_id IS NULL AND device_id IS NULL "
                          f"AND ip IS NULL AND subject_ref IS NULL, consent_analytics FROM {WS_EVENTS} "
                          "WHERE event_id LIKE '00000000-0000-4000-8000-%'")
    mine = {_later_id(i) for i, r in enumerate(lines) if r["user_id"] == user_id}
    assert mine and len(mine) < len(rows)
    assert {(eid, stripped, consent) for eid, stripped, consent in rows} == {
        (eid, eid in mine, eid not in mine) for eid, _, _ in rows}
    # The check behind "an opted-out visitor's events carry no identifier": none after this load; a later row
    # carrying the visitor's blind index (what a broken ingestion would store) is found.
    with duckdb.connect(str(platform.warehouse)) as con:
        assert identified_after_withdrawal(con, WS_EVENTS, INDEXES) == 0
        (bidx,) = con.execute(f"SELECT subject_bidx FROM privacy.consent WHERE request_id = ? AND purpose = 'analytics'",
                              [rid]).fetchone()
        con.execute(f"UPDATE {WS_EVENTS} SET anonymous_id_bidx = ? WHERE event_id = ?", [bidx, sorted(mine)[0]])
        assert identified_after_withdrawal(con, WS_EVENTS, INDEXES) == 1
        con.execute(f"UPDATE {WS_EVENTS} SET user_id_bidx = ? WHERE event_id IN (SELECT unnest(?))",
                    [bidx, sorted(loaded)[:3]])  # rows loaded before the opt-out may keep it
        assert identified_after_withdrawal(con, WS_EVENTS, INDEXES) == 1


def test_access_exports_are_deleted_after_30_days(platform):
    ws, user_id = _people(platform, 1)[0]
    inbox, (rid,), _ = _process(platform, Request("access", ws, "user_id", user_id))
    export = Path(inbox.get(rid)["export_path"])
    assert export.is_file()
    with platform.keyring() as cipher, duckdb.connect(str(platform.warehouse)) as con:
        audit = AuditLog.of(platform.root / "privacy" / "audit.jsonl", cipher)
        soon = process_pending(con, cipher, inbox, audit, exports_dir=export.parent, landing_urls={},
                               now=dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=29))
        assert soon.exports_removed == 0 and export.is_file()
        late = process_pending(con, cipher, inbox, audit, exports_dir=export.parent, landing_urls={},
                               now=dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=31))
    assert late.exports_removed == 1 and not export.exists()
    assert inbox.get(rid)["export_path"] is None and inbox.get(rid)["status_detail"].endswith("export deleted after 30 days")
    assert audit.entries()[-1]["action"] == "dsr.export_expired" and audit.verify().intact


def test_cli_files_requests_and_refuses_bad_ones(tmp_path):
    import os
    import subprocess
    import sys

    env = {**os.environ, "GTG_DATA_DIR": str(tmp_path / "data"), "GTG_META_APP_SECRET": "app-secret",
           "DAGSTER_HOME": str(tmp_path / "dagster")}
    root = Path(__file__).resolve().parents[2]

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "cli", "privacy", *args], cwd=root, env=env,
                              capture_output=True, text=True, timeout=120)

    payload = base64.urlsafe_b64encode(json.dumps(
        {"algorithm": "HMAC-SHA256", "issued_at": int(dt.datetime.now(dt.timezone.utc).timestamp()),
         "user_id": "fb_7"}).encode()).decode()
    signature = base64.urlsafe_b64encode(hmac.new(b"app-secret", payload.encode(), hashlib.sha256).digest()).decode()
    meta = cli("provider-deletion", "--workspace", "ws_1", "--meta-signed-request", f"{signature}.{payload}")
    assert meta.returncode == 0, meta.stderr
    answer = json.loads(meta.stdout)
    assert answer["url"].startswith("https://app.gtgcrm.com/privacy/deletion-status/dsr_") and len(answer["confirmation_code"]) == 16
    bad = cli("submit", "--type", "access", "--workspace", "ws_1", "--email", "ann-at-example.com")
    assert (bad.returncode, bad.stderr.strip()) == (2, "request refused: the email identifying the person is malformed")
    unknown = cli("submit", "--type", "erasure", "--workspace", "ws_1", "--user-id", "u1")
    assert unknown.stderr.strip() == "request refused: unknown workspace: no data is held for this workspace id"
    status = cli("status")
    rows = status.stdout.splitlines()[1:]
    assert len(rows) == 1 and rows[0].split()[1:4] == ["erasure", "meta_data_deletion", "received"]


def _run_batches(platform: Platform, batches: list[list[Request]], now: dt.datetime) -> int:
    """Process each batch in its own run at `now`; the keys destroyed in all."""
    inbox = Inbox(platform.root / "privacy" / "requests.sqlite")
    destroyed = 0
    for batch in batches:
        for request in batch:
            inbox.submit(request, now=now)
        with platform.keyring() as cipher, duckdb.connect(str(platform.warehouse)) as con:
            destroyed += process_pending(
                con, cipher, inbox, AuditLog.of(platform.root / "privacy" / "audit.jsonl", cipher),
                exports_dir=platform.root / "exports", landing_urls={"usage_events": str(platform.landing)},
                now=now).keys_destroyed
    return destroyed


def _state(platform: Platform) -> dict:
    """Every warehouse table's rows, the inbox, the audit entries (their chain fields aside) and landed lines."""
    tables = [f"{s}.{t}" for s, t in platform.query(
        "SELECT table_schema, table_name FROM information_schema.tables WHERE table_schema NOT IN ('main') "
        "AND table_type = 'BASE TABLE' ORDER BY 1, 2")]
    with platform.keyring() as cipher:
        log = AuditLog.of(platform.root / "privacy" / "audit.jsonl", cipher)
        assert log.verify().intact
        entries = [{k: v for k, v in e.items() if k not in ("at", "hash", "prev")} for e in log.entries()]
    return {
        "tables": {t: sorted(platform.query(f"SELECT * FROM {t}"), key=repr) for t in tables},
        "inbox": Inbox(platform.root / "privacy" / "requests.sqlite").all(),
        "audit": entries,
        "landed": sorted(json.dumps(r, sort_keys=True) for r in landed_lines(platform.landing)),
    }


def test_a_batch_of_erasures_equals_the_same_erasures_one_by_one(loaded, platform, tmp_path):
    single = Platform(tmp_path / "single")
    shutil.copytree(loaded.root, single.root)
    people = _people(platform, 6)
    requests = [Request("erasure", ws, "user_id", uid, request_id=f"dsr_{i:016x}") for i, (ws, uid) in enumerate(people)]
    requests.append(Request("erasure", "ws_nobody_knows", "user_id", people[0][1], request_id=f"dsr_{99:016x}"))
    now = dt.datetime(2026, 11, 30, 12, tzinfo=dt.timezone.utc)
    before = platform.query(f"SELECT count(*) FROM {WS_EVENTS}")[0][0]
    keys_batch = _run_batches(platform, [requests], now)
    keys_single = _run_batches(single, [[r] for r in requests], now)
    batch, one_by_one = _state(platform), _state(single)
    assert keys_batch == keys_single > 0
    assert platform.query(f"SELECT count(*) FROM {WS_EVENTS}")[0][0] < before
    assert [(r["request_id"], r["status"]) for r in batch["inbox"]] == \
        [(r.request_id, "completed") for r in requests[:-1]] + [(requests[-1].request_id, "rejected")]
    assert [(e["seq"], e["action"]) for e in batch["audit"]] == \
        [(i + 1, "dsr.erasure.rejected" if i == 0 else "dsr.erasure") for i in range(len(requests))]
    assert batch["tables"] == one_by_one["tables"]
    assert batch["inbox"] == one_by_one["inbox"]
    assert batch["landed"] == one_by_one["landed"]
    # the same entries (the batch rejects first, the runs one by one go in filing order)
    def unordered(entries):
        return sorted(({k: v for k, v in e.items() if k != "seq"} for e in entries), key=lambda e: e["request_id"])
    assert unordered(batch["audit"]) == unordered(one_by_one["audit"])
