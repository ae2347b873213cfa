"""Retention on a real warehouse: expired records anonymised or deleted, the rest untouched, keys destroyed
for subjects nothing refers to any more, and the policy file checked at load."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import pytest

from assets.privacy import POLICY
from pipelines.catalog import DECLARED_TABLES
from pipelines.privacy.audit import AuditLog
from pipelines.privacy.keyring import DecryptStats
from pipelines.privacy.policy import PolicyError, load_policy
from pipelines.privacy.retention import cutoff, run_rule, violations
from tests.conftest import END_DATE

RULES = {rule.table: rule for rule in POLICY.rules}
EVENTS, QUARANTINE = RULES["raw_events.usage_events"], RULES["raw_events.usage_events_quarantine"]
# 395 days after the generated days, plus a day and a half: the cutoff falls inside the generated range.
NOW = dt.datetime.combine(END_DATE, dt.time(12), dt.timezone.utc) + dt.timedelta(days=EVENTS.keep_days - 1)
PERSONAL = ("user_id", "user_id_bidx", "anonymous_id", "anonymous_id_bidx", "device_id", "device_id_bidx",
            "ip", "ip_bidx", "user_agent", "subject_ref", "properties", "browser_version", "os_version")


@pytest.fixture(scope="module")
def loaded(tmp_path_factory) -> "Platform":  # noqa: F821 - the conftest dataclass
    from tests.conftest import Platform

    platform = Platform(tmp_path_factory.mktemp("retention") / "data")
    platform.generate()
    platform.ingest()
    return platform


def _copy(platform, tmp_path: Path):
    """A private copy of the loaded platform (warehouse + keys), so each test starts from the same state."""
    import shutil

    from tests.conftest import Platform

    copy = Platform(tmp_path / "data")
    shutil.copytree(platform.root, copy.root)
    return copy


def test_anonymises_exactly_the_expired_events_and_keeps_the_rest(loaded, tmp_path):
    platform = _copy(loaded, tmp_path)
    limit = cutoff(EVENTS, NOW)
    table = "raw_events.usage_events"
    keep_sql = f"SELECT * EXCLUDE (_dlt_load_id) FROM {table} WHERE occurred_at >= ? ORDER BY event_id"
    kept_before = platform.query(keep_sql, [limit])
    old_before = platform.query(
        f"SELECT event_id, ip_network, browser_family, os_family, device_class, page_path, event_type, "
        f"date_trunc('day', occurred_at) FROM {table} WHERE occurred_at < ? ORDER BY event_id", [limit])
    identifying = platform.query(
        f"SELECT count(*) FROM {table} WHERE occurred_at < ? AND (" + " OR ".join(f"{c} IS NOT NULL" for c in PERSONAL)
        + " OR occurred_at <> date_trunc('day', occurred_at))", [limit])[0][0]
    total = platform.query(f"SELECT count(*) FROM {table}")[0][0]
    assert 0 < len(old_before) < total and identifying > 0

    with platform.keyring() as cipher, duckdb.connect(str(platform.warehouse)) as con:
        assert violations(con, EVENTS, DECLARED_TABLES[table], NOW) == identifying
        result = run_rule(con, EVENTS, cipher, AuditLog.of(platform.root / "audit.jsonl", cipher), NOW)
        assert violations(con, EVENTS, DECLARED_TABLES[table], NOW) == 0

    assert result.rows_expired == identifying
    assert platform.query(f"SELECT count(*) FROM {table}")[0][0] == total
    assert platform.query(keep_sql, [limit]) == kept_before  # inside the window: untouched, byte for byte
    old_after = platform.query(
        f"SELECT event_id, ip_network, browser_family, os_family, device_class, page_path, event_type, "
        f"occurred_at FROM {table} WHERE occurred_at < ? ORDER BY event_id", [limit])
    assert old_after == old_before  # the aggregate-safe remainder stays, the time generalised to the day
    assert platform.query(
        f"SELECT count(*) FROM {table} WHERE occurred_at < ? AND ("
        + " OR ".join(f"{c} IS NOT NULL" for c in PERSONAL) + ")", [limit])[0][0] == 0
    # Running again finds nothing left to do.
    with platform.keyring() as cipher, duckdb.connect(str(platform.warehouse)) as con:
        assert run_rule(con, EVENTS, cipher, AuditLog.of(platform.root / "audit.jsonl", cipher), NOW).rows_expired == 0


def test_destroys_keys_only_of_subjects_no_row_needs(loaded, tmp_path):
    platform = _copy(loaded, tmp_path)
    limit = cutoff(EVENTS, NOW)
    subjects = """SELECT DISTINCT workspace_id, subject_ref FROM raw_events.{} WHERE subject_ref IS NOT NULL {}"""
    expired = set(platform.query(subjects.format("usage_events", "AND occurred_at < ?"), [limit]))
    remaining = set(platform.query(subjects.format("usage_events", "AND occurred_at >= ?"), [limit])) | set(
        platform.query(subjects.format("usage_events_quarantine", "")))
    gone = expired - remaining
    assert gone and expired & remaining  # both cases occur in the data

    with platform.keyring() as cipher, duckdb.connect(str(platform.warehouse)) as con:
        result = run_rule(con, EVENTS, cipher, AuditLog.of(platform.root / "audit.jsonl", cipher), NOW)
    assert (result.subjects_expired, result.keys_destroyed) == (len(expired), len(gone))

    # A kept subject's recent events still decrypt; nothing of a destroyed subject does any more.
    rows = platform.query("SELECT workspace_id, subject_ref, ip FROM raw_events.usage_events "
                          "WHERE ip IS NOT NULL AND subject_ref IS NOT NULL")
    stats = DecryptStats()
    with platform.keyring() as cipher:
        for ws, ref, ct in rows:
            cipher.decrypt(ws, [ct], subject_refs=[ref], context="usage_events.ip", stats=stats)
        for ws, ref in list(gone)[:20]:
            assert cipher.decrypt(ws, [b"\x01" + b"\x00" * 40], subject_refs=[ref], context="usage_events.ip",
                                  stats=stats).to_pylist() == [None]
    assert stats.decrypted == len(rows) and stats.missing_key == min(20, len(gone))


def test_quarantine_rows_past_30_days_are_deleted(loaded, tmp_path):
    platform = _copy(loaded, tmp_path)
    now = dt.datetime.combine(END_DATE, dt.time(6), dt.timezone.utc) + dt.timedelta(days=QUARANTINE.keep_days)
    limit = cutoff(QUARANTINE, now)
    table = "raw_events.usage_events_quarantine"
    by_day = dict(platform.query(f"SELECT received_date, count(*) FROM {table} GROUP BY 1"))
    expected_gone = sum(n for day, n in by_day.items() if day < limit)
    assert 0 < expected_gone < sum(by_day.values())
    with platform.keyring() as cipher, duckdb.connect(str(platform.warehouse)) as con:
        audit = AuditLog.of(platform.root / "audit.jsonl", cipher)
        assert run_rule(con, QUARANTINE, cipher, audit, now).rows_expired == expected_gone
        assert violations(con, QUARANTINE, DECLARED_TABLES[table], now) == 0
    assert platform.query(f"SELECT count(*) FROM {table}")[0][0] == sum(by_day.values()) - expected_gone
    entry = audit.entries()[-1]
    assert (entry["action"], entry["tables"], entry["counts"]["cutoff"]) == (
        "retention.delete", {table: expected_gone}, str(limit))
    assert audit.verify().intact


POLICY_BASE = """
[terms.t]
provider = "p"
source = "s"
text = "x"
[[rule]]
table = "raw_events.usage_events_quarantine"
term = "t"
age_column = "received_date"
keep_days = 30
action = "delete"
"""
EVENT_RULE = """
[[rule]]
table = "raw_events.usage_events"
term = "t"
age_column = "occurred_at"
keep_days = 30
action = "anonymise"
"""


@pytest.mark.parametrize(
    ("replace", "message"),
    [
        (('"raw_events.usage_events"', '"raw_events.usage_eventz"'), "unknown table 'raw_events.usage_eventz'"),
        (('age_column = "occurred_at"', 'age_column = "occured_at"'), "age_column 'occured_at' is not a date"),
        (('action = "anonymise"', 'action = "shred"'), "unknown action 'shred'"),
        (('term = "t"\nage_column = "occurred_at"', 'term = "gdpr"\nage_column = "occurred_at"'), "unknown term 'gdpr'"),
        (('keep_days = 30\naction = "anonymise"', 'keep_days = -1\naction = "anonymise"'), "keep_days must be"),
        (('action = "anonymise"', 'action = "anonymise"\nclear = ["source_file"]'), "NOT NULL"),
        (('action = "anonymise"', 'action = "anonymise"\ntruncate = { occurred_at = "week" }'), "truncate unit 'week'"),
        (('action = "anonymise"', 'action = "anonymise"\nwhen = "never"'), "unknown key(s) ['when']"),
        ((EVENT_RULE, ""), "declare personal data but have no retention rule"),
    ],
)
def test_policy_errors_are_clear_at_load(tmp_path, replace, message):
    events_only = {t: c for t, c in DECLARED_TABLES.items() if t.startswith("raw_events.")}
    text = (POLICY_BASE + EVENT_RULE).replace(*replace) if replace[0] != EVENT_RULE else POLICY_BASE
    path = tmp_path / "policy.toml"
    path.write_text(text)
    with pytest.raises(PolicyError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[").replace("]", r"\]")):
        load_policy(events_only, path, zones=())
    path.write_text(POLICY_BASE + EVENT_RULE)
    assert len(load_policy(events_only, path, zones=()).rules) == 2
