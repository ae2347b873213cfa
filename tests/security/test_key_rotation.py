"""Key rotation through the CLI on a real data folder: afterwards every stored value still decrypts to what it
was, and the old key (master or workspace) opens nothing that is stored any more."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from pipelines.connections.registry import ConnectionRegistry
from pipelines.privacy.audit import AuditLog
from pipelines.privacy.categories import declaration, stored_declarations
from pipelines.privacy.keyring import (
    Keyring, KeyringError, _subject_key_aad, _value_aad, _workspace_key_aad, load_master_key,
)
from pipelines.privacy.protect import value_context
from tests.conftest import Platform

PROJECT_ROOT = Path(__file__).resolve().parents[2]
ACCOUNT, REFRESH = "ann.rotation@example.com", "refresh-token-of-ann"


def _cli(platform: Platform, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GTG_")}
    env.update(GTG_ENV="sandbox", GTG_DATA_DIR=str(platform.root))
    return subprocess.run([sys.executable, "-m", "cli", "keys", *args, "--requested-by", "ops-test"],
                          cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=120)


def _plaintexts(platform: Platform, cipher: Keyring) -> dict[tuple[str, str], list]:
    """Every encrypted column of every table, decrypted, in rowid order."""
    out = {}
    with duckdb.connect(str(platform.warehouse), read_only=True) as con:
        for table, columns in stored_declarations(con).items():
            decl = declaration(columns)
            for column in decl.encrypted:
                data = con.sql(f"SELECT workspace_id, {decl.subject_ref} AS ref, {column} AS v FROM {table} "
                               "ORDER BY rowid").to_arrow_table()
                out[(table, column)] = cipher.decrypt_many(data.column("workspace_id"), data.column("ref"),
                                                           data.column("v"), value_context(table, column)).to_pylist()
    return out


def _unwrap(key: bytes, sealed: bytes, aad: bytes) -> bytes:
    return AESGCM(key).decrypt(sealed[1:13], sealed[13:], aad)


@pytest.fixture
def loaded(platform: Platform) -> tuple[Platform, str]:
    platform.generate()
    platform.ingest()
    (workspace,) = platform.query(  # one whose quarantine holds lines without a subject (workspace-key values)
        "SELECT workspace_id FROM raw_events.usage_events_quarantine WHERE subject_ref IS NULL "
        "AND workspace_id <> '_unattributed' GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1")[0]
    with platform.keyring() as cipher:
        ConnectionRegistry(platform.root / "connections" / "connections.sqlite").add(
            cipher, workspace, "gmail", ACCOUNT, REFRESH, connection_id="gmail-rotation")
    return platform, workspace


def test_master_key_rotation_rewraps_keys_and_leaves_data_untouched(loaded) -> None:
    platform, _ = loaded
    old_key = load_master_key(None, platform.master_key_file, False)
    with platform.keyring() as cipher:
        before = _plaintexts(platform, cipher)
        workspaces = [w for (w,) in sqlite3.connect(platform.keyring_path).execute("SELECT workspace_id FROM workspace_keys")]
    warehouse_digest = hashlib.sha256(platform.warehouse.read_bytes()).hexdigest()

    result = _cli(platform, "rotate-master")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"master key rotated: {len(workspaces)} workspace keys re-wrapped, no data re-encrypted"

    new_key = load_master_key(None, platform.master_key_file, False)
    assert new_key != old_key and oct(platform.master_key_file.stat().st_mode & 0o777) == "0o600"
    assert not platform.master_key_file.with_name("master.key.new").exists()
    assert hashlib.sha256(platform.warehouse.read_bytes()).hexdigest() == warehouse_digest  # nothing re-encrypted
    with pytest.raises(KeyringError, match="master key does not match"):
        Keyring.open(platform.keyring_path, old_key)
    with sqlite3.connect(platform.keyring_path) as store:  # the old key unwraps no stored key any more
        wrapped = store.execute("SELECT workspace_id, wrapped_key FROM workspace_keys").fetchall()
        platform_keys = store.execute("SELECT name, wrapped_key FROM platform_keys").fetchall()
    assert len(wrapped) == len(workspaces) > 1 and [n for n, _ in platform_keys] == ["audit-chain"]
    for workspace, sealed in wrapped:
        with pytest.raises(InvalidTag):
            _unwrap(old_key, sealed, _workspace_key_aad(workspace))
        _unwrap(new_key, sealed, _workspace_key_aad(workspace))
    with Keyring.open(platform.keyring_path, new_key) as cipher:
        assert _plaintexts(platform, cipher) == before
        registry = ConnectionRegistry(platform.root / "connections" / "connections.sqlite")
        assert registry.account(cipher, registry.get("gmail-rotation")) == ACCOUNT
        audit = AuditLog.of(platform.root / "privacy" / "audit.jsonl", cipher)
    assert audit.verify().intact
    (entry,) = audit.entries()
    assert (entry["actor"], entry["action"], entry["counts"]) == (
        "operator:ops-test", "keys.rotate_master", {"workspace_keys_rewrapped": len(workspaces)})


def test_master_key_rotation_from_the_environment_needs_the_new_key_there(loaded) -> None:
    platform, _ = loaded
    env_key = platform.master_key_file.read_text().strip()
    refused = subprocess.run(
        [sys.executable, "-m", "cli", "keys", "rotate-master"], cwd=PROJECT_ROOT, capture_output=True, text=True,
        env={**os.environ, "GTG_ENV": "sandbox", "GTG_DATA_DIR": str(platform.root), "GTG_MASTER_KEY": env_key},
        timeout=120)
    assert (refused.returncode, refused.stderr.strip()) == (2, "rotation refused: GTG_MASTER_KEY is set: put the new "
                                                                "key in GTG_NEW_MASTER_KEY for the rotation, then "
                                                                "replace GTG_MASTER_KEY with it.")
    assert platform.master_key_file.read_text().strip() == env_key


def test_workspace_key_rotation_reencrypts_what_the_old_key_encrypted(loaded) -> None:
    platform, workspace = loaded
    master = load_master_key(None, platform.master_key_file, False)
    with sqlite3.connect(platform.keyring_path) as store:
        (sealed,) = store.execute("SELECT wrapped_key FROM workspace_keys WHERE workspace_id = ?", (workspace,)).fetchone()
        subjects = store.execute("SELECT count(*) FROM subject_keys WHERE workspace_id = ?", (workspace,)).fetchone()[0]
    old = _unwrap(master, sealed, _workspace_key_aad(workspace))
    subjectless = platform.query("SELECT count(user_agent) + count(ip) + count(anonymous_id) + count(device_id) + "
                                 "count(user_id) FROM raw_events.usage_events WHERE workspace_id = ? AND subject_ref "
                                 "IS NULL", [workspace])[0][0]
    quarantined = platform.query("SELECT count(raw_line) FROM raw_events.usage_events_quarantine "
                                 "WHERE workspace_id = ? AND subject_ref IS NULL", [workspace])[0][0]
    refs_before = platform.query("SELECT subject_ref FROM raw_events.usage_events ORDER BY rowid")
    with platform.keyring() as cipher:
        before = _plaintexts(platform, cipher)

    result = _cli(platform, "rotate-workspace", workspace)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (f"{workspace}: key rotated; {subjects} subject keys re-wrapped, "
                                     f"{subjectless + quarantined + 2} values re-encrypted")  # + address and token

    with platform.keyring() as cipher:
        assert _plaintexts(platform, cipher) == before
        registry = ConnectionRegistry(platform.root / "connections" / "connections.sqlite")
        connection = registry.get("gmail-rotation")
        assert (registry.account(cipher, connection), registry.tokens(cipher, connection).refresh_token) == (ACCOUNT, REFRESH)
        audit = AuditLog.of(platform.root / "privacy" / "audit.jsonl", cipher)
    assert platform.query("SELECT subject_ref FROM raw_events.usage_events ORDER BY rowid") == refs_before  # indexes kept
    (entry,) = audit.entries()
    assert (entry["action"], entry["workspace_id"], entry["counts"], entry["tables"]) == (
        "keys.rotate_workspace", workspace, {"subject_keys_rewrapped": subjects, "resumed": 0},
        {"raw_events.usage_events": subjectless, "raw_events.usage_events_quarantine": quarantined, "connections": 2})
    assert audit.verify().intact

    # Nothing stored opens with the old workspace key: not its key row, no subject key, no value it encrypted.
    with sqlite3.connect(platform.keyring_path) as store:
        assert store.execute("SELECT retired_key FROM workspace_key_rotations WHERE workspace_id = ?",
                             (workspace,)).fetchall() == [(None,)]
        wrapped_subjects = store.execute("SELECT subject_ref, wrapped_key FROM subject_keys WHERE workspace_id = ?",
                                         (workspace,)).fetchall()
    assert len(wrapped_subjects) == subjects > 0
    for ref, wrapped in wrapped_subjects:
        with pytest.raises(InvalidTag):
            _unwrap(old, wrapped, _subject_key_aad(workspace, ref))
    tried = 0
    for column in ("user_id", "anonymous_id", "device_id", "ip", "user_agent"):
        aad = _value_aad(workspace, value_context("raw_events.usage_events", column))
        for (ciphertext,) in platform.query(f"SELECT {column} FROM raw_events.usage_events WHERE workspace_id = ? "
                                            f"AND subject_ref IS NULL AND {column} IS NOT NULL", [workspace]):
            with pytest.raises(InvalidTag):
                _unwrap(old, ciphertext, aad)
            tried += 1
    aad = _value_aad(workspace, value_context("raw_events.usage_events_quarantine", "raw_line"))
    for (ciphertext,) in platform.query("SELECT raw_line FROM raw_events.usage_events_quarantine WHERE workspace_id = ? "
                                        "AND subject_ref IS NULL", [workspace]):
        with pytest.raises(InvalidTag):
            _unwrap(old, ciphertext, aad)
        tried += 1
    assert tried == subjectless + quarantined and quarantined > 0
    with sqlite3.connect(platform.root / "connections" / "connections.sqlite") as registry_file:
        (account_enc,) = registry_file.execute("SELECT account_enc FROM connections").fetchone()
    with pytest.raises(InvalidTag):
        _unwrap(old, account_enc, _value_aad(workspace, "connections.account"))


def test_an_interrupted_workspace_rotation_reads_both_keys_and_resumes(tmp_path: Path) -> None:
    key = os.urandom(32)
    with Keyring.open(tmp_path / "keyring.sqlite", key) as cipher:
        old_values = cipher.encrypt("ws_1", ["a", "b"], subjects=None, context="t.c")
        subject_value = cipher.encrypt("ws_1", ["c"], subjects=["person"], context="t.c", subject_kind="user.unique_id")
        index_before = cipher.blind_index("ws_1", ["person"], kind="user.unique_id").to_pylist()
        assert cipher.begin_workspace_rotation("ws_1") == (True, 1)
    with Keyring.open(tmp_path / "keyring.sqlite", key) as cipher:  # a new process after the crash
        new_value = cipher.encrypt("ws_1", ["d"], subjects=None, context="t.c")
        mixed = pa.concat_arrays([old_values, new_value])
        assert cipher.decrypt("ws_1", mixed, subject_refs=None, context="t.c").to_pylist() == ["a", "b", "d"]
        assert cipher.decrypt("ws_1", subject_value, subject_refs=index_before, context="t.c").to_pylist() == ["c"]
        assert cipher.blind_index("ws_1", ["person"], kind="user.unique_id").to_pylist() == index_before
        assert cipher.begin_workspace_rotation("ws_1") == (False, 0)  # resumed: no second new key
        assert cipher.finish_workspace_rotation("ws_1") is True
        with pytest.raises(KeyringError, match="could not be authenticated"):
            cipher.decrypt("ws_1", old_values, subject_refs=None, context="t.c")
        assert cipher.decrypt("ws_1", new_value, subject_refs=None, context="t.c").to_pylist() == ["d"]
        assert cipher.finish_workspace_rotation("ws_1") is False


def test_a_process_holding_the_old_master_key_cannot_write_keys_after_a_rotation(tmp_path: Path) -> None:
    old, new = os.urandom(32), os.urandom(32)
    stale = Keyring.open(tmp_path / "keyring.sqlite", old)
    stale.blind_index("ws_1", ["x"], kind="user.unique_id")
    with Keyring.open(tmp_path / "keyring.sqlite", old) as rotating:
        assert rotating.rotate_master_key(new) == 1
    with pytest.raises(KeyringError, match="was rotated since this keyring was opened"):
        stale.blind_index("ws_2", ["x"], kind="user.unique_id")  # a new workspace key would be wrapped by the old master key
    stale.close()
    with Keyring.open(tmp_path / "keyring.sqlite", new) as cipher:
        assert not cipher.has_workspace("ws_2") and cipher.has_workspace("ws_1")


def test_a_workspace_rotation_waits_for_the_warehouse_writer_and_changes_nothing(loaded) -> None:
    platform, workspace = loaded
    keyring_bytes = platform.keyring_path.read_bytes()
    with duckdb.connect(str(platform.warehouse)):  # a job holding DuckDB's writer lock
        refused = _cli(platform, "rotate-workspace", workspace)
    assert (refused.returncode, refused.stderr.strip()) == (
        2, "rotation refused: another process is writing the warehouse; retry when no job runs")
    assert platform.keyring_path.read_bytes() == keyring_bytes
