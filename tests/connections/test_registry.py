"""The one connection registry every provider shares: providers beyond mail, the re-authorisation status, an old
registry file migrated in place, and the status a failed sync leaves (the cause found through dlt's wrapping)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from dagster import Failure

from assets.connections import sync_guard, syncable
from pipelines.connections.errors import ReauthorizationRequired
from pipelines.connections.outcome import recorded_outcome
from pipelines.connections.registry import PROVIDERS, STATUSES, ConnectionRegistry
from pipelines.privacy.keyring import Keyring, load_master_key

# The registry's table as written before the ad platforms joined: CHECK constraints naming the mail providers.
_OLD_SCHEMA = """
CREATE TABLE connections (
    connection_id TEXT PRIMARY KEY, workspace_id TEXT NOT NULL,
    provider TEXT NOT NULL CHECK (provider IN ('gmail', 'outlook')), sandbox INTEGER NOT NULL DEFAULT 0,
    account_enc BLOB, account_bidx BLOB, refresh_token_enc BLOB, access_token_enc BLOB,
    sync_state TEXT NOT NULL DEFAULT '{}',
    status TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'erroring', 'revoked')),
    status_detail TEXT, created_at TEXT NOT NULL, updated_at TEXT NOT NULL, last_synced_at TEXT);
"""


@pytest.fixture
def cipher(tmp_path: Path):
    with Keyring.open(tmp_path / "keyring.sqlite", load_master_key(None, tmp_path / "master.key", True)) as keyring:
        yield keyring


def test_every_provider_registers_with_its_account_encrypted_and_indexed(tmp_path: Path, cipher) -> None:
    registry = ConnectionRegistry(tmp_path / "connections.sqlite")
    for provider in PROVIDERS:
        registry.add(cipher, "ws_0001", provider, f" Account-{provider}@Example.com ", "refresh-secret", "access-secret",
                     connection_id=f"c-{provider}")
    assert [c.provider for c in registry.list()] == sorted(PROVIDERS, key=lambda p: f"c-{p}")
    # A mailbox address is normalised like an e-mail; an ad account id is kept as given (ids are case-sensitive).
    assert registry.account(cipher, registry.get("c-gmail")) == "account-gmail@example.com"
    assert registry.account(cipher, registry.get("c-google_ads")) == "Account-google_ads@Example.com"
    raw = (tmp_path / "connections.sqlite").read_bytes()
    assert b"example.com" not in raw.lower() and b"-secret" not in raw
    with pytest.raises(ValueError, match="unknown provider 'tiktok_ads'"):
        registry.add(cipher, "ws_0001", "tiktok_ads", "x", None)


def test_a_registry_written_before_the_ad_platforms_is_migrated_in_place(tmp_path: Path, cipher) -> None:
    path = tmp_path / "connections.sqlite"
    with sqlite3.connect(path) as con:
        con.executescript(_OLD_SCHEMA)
        con.execute("INSERT INTO connections (connection_id, workspace_id, provider, sync_state, status, created_at, "
                    "updated_at) VALUES ('ws_0001-gmail-0', 'ws_0001', 'gmail', '{\"history_id\": \"42\"}', 'erroring', "
                    "'2026-01-01', '2026-01-02')")
    registry = ConnectionRegistry(path)
    old = registry.get("ws_0001-gmail-0")
    assert (old.provider, old.status, old.sync_state) == ("gmail", "erroring", {"history_id": "42"})
    registry.add(cipher, "ws_0001", "facebook_ads", "act_1001", "refresh", connection_id="ws_0001-facebook_ads-0")
    registry.mark_needs_reauth("ws_0001-facebook_ads-0", "Meta error 190")
    assert registry.get("ws_0001-facebook_ads-0").status == "needs_reauth"
    with sqlite3.connect(path) as con:
        tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        (sql,) = con.execute("SELECT sql FROM sqlite_master WHERE name = 'connections'").fetchone()
    assert tables == ["connections"] and "CHECK" not in sql
    ConnectionRegistry(path)  # opening again changes nothing
    assert len(registry.list(statuses=STATUSES)) == 2


class _StepFailed(Exception):
    """What dlt does to a source's exception: wraps it in a step error of its own."""


def _fail_wrapped(inner: Exception) -> None:
    try:
        raise inner
    except Exception as exc:
        raise _StepFailed("extract step failed") from exc


def test_a_refused_token_makes_the_connection_wait_for_the_user_not_crash_loop(tmp_path: Path, cipher) -> None:
    registry = ConnectionRegistry(tmp_path / "connections.sqlite")
    connection = registry.add(cipher, "ws_0001", "facebook_ads", "act_1001", "refresh", connection_id="meta-1")
    registry.save_state("meta-1", {"insights_until": "2026-11-30"})
    with pytest.raises(Failure) as failure, sync_guard(registry, connection):
        _fail_wrapped(ReauthorizationRequired("Meta error 190 (expired access token)"))
    assert failure.value.description == "connection meta-1 needs re-authorisation: Meta error 190 (expired access token)"
    assert failure.value.allow_retries is False
    after = registry.get("meta-1")
    assert (after.status, after.status_detail) == ("needs_reauth", "Meta error 190 (expired access token)")
    assert after.sync_state == {"insights_until": "2026-11-30"}  # the next sync resumes where this one stopped
    assert registry.list("facebook_ads") == []  # off the schedules
    with pytest.raises(Failure, match="meta-1 is needs_reauth: nothing to sync until the user reconnects"):
        syncable(registry, "meta-1")

    registry.reauthorise(cipher, "meta-1", refresh_token="new-refresh")
    assert [c.connection_id for c in registry.list("facebook_ads")] == ["meta-1"]
    assert syncable(registry, "meta-1").status == "active"


def test_any_other_failure_marks_the_connection_erroring_with_the_root_class_only(tmp_path: Path, cipher) -> None:
    registry = ConnectionRegistry(tmp_path / "connections.sqlite")
    connection = registry.add(cipher, "ws_0001", "google_ads", "1234567890", "refresh", connection_id="gads-1")
    with pytest.raises(_StepFailed), sync_guard(registry, connection):
        _fail_wrapped(ConnectionResetError("peer said: alice@example.com"))
    after = registry.get("gads-1")
    assert (after.status, after.status_detail) == ("erroring", "ConnectionResetError")  # the class, never the text
    assert [c.connection_id for c in registry.list("google_ads")] == ["gads-1"]  # retried on schedule

    registry.revoke("gads-1")
    with pytest.raises(ValueError, match="gads-1 is revoked"):
        registry.reauthorise(cipher, "gads-1", refresh_token="again")
    with pytest.raises(Failure, match="gads-1 is revoked"):
        syncable(registry, "gads-1")
    with recorded_outcome(registry, registry.get("gads-1")):
        pass  # a sync that succeeds leaves the status to the caller's save_state
    assert registry.get("gads-1").status == "revoked"
