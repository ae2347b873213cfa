"""`python -m pipelines.gmail` killed (`kill -9`, by PID) while dlt loads, or while its work database is open,
and a connection whose token no longer works: the next sync finishes or discards what was left,
syncs every connection exactly, and no plaintext file is left behind. Real processes, the real sandbox
servers on 127.0.0.1, a real warehouse; the test only drives when the kill happens."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import duckdb

from pipelines.connections.registry import ConnectionRegistry
from pipelines.mail_common.sandbox import sandbox_accounts, seed_connections
from pipelines.privacy.keyring import Keyring, load_master_key
from tests.kill import kill_when

PROJECT = Path(__file__).resolve().parents[2]
TIMEOUT_S = 180
MESSAGES, CONTACTS = 120, 30
GMAIL = ("ws_0001-gmail-0", "ws_0002-gmail-2", "ws_0003-gmail-4")
_OVERRIDES = ("GTG_WAREHOUSE_PATH", "GTG_KEYRING_PATH", "GTG_MASTER_KEY_FILE", "GTG_MASTER_KEY",
              "GTG_CONNECTIONS_PATH", "GTG_GOOGLE_CLIENT_ID", "GTG_GOOGLE_CLIENT_SECRET")


def _gmail(root: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k not in _OVERRIDES}
    env.update(GTG_DATA_DIR=str(root), GTG_ENV="sandbox", GTG_SANDBOX_MAIL_MESSAGES=str(MESSAGES),
               GTG_SANDBOX_MAIL_CONTACTS=str(CONTACTS))
    return subprocess.Popen([sys.executable, "-m", "pipelines.gmail"], cwd=PROJECT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _finish(process: subprocess.Popen) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=TIMEOUT_S)
    return process.returncode, out.decode(), err.decode()


def _held(root: Path) -> list[tuple]:
    with duckdb.connect(str(root / "warehouse.duckdb"), read_only=True) as con:
        return con.execute(
            "SELECT connection_id, count(*), count(DISTINCT message_id) FROM raw_gmail.gmail_messages GROUP BY 1 "
            "ORDER BY 1").fetchall() + con.execute(
            "SELECT connection_id, count(*), count(DISTINCT contact_id) FROM raw_gmail.gmail_contacts GROUP BY 1 "
            "ORDER BY 1").fetchall()


def _plaintexts() -> set[bytes]:
    """Addresses and subjects of the sandbox mailboxes the standalone sync reads (the same seeded accounts)."""
    values: set[bytes] = set()
    for account in sandbox_accounts(MESSAGES, CONTACTS):
        for message in account.messages.values():
            values.add(message.subject.encode())
            values.update(a.email.lower().encode() for a in [message.sender, *message.to, *message.cc])
    return {v for v in values if len(v) >= 8}


def _files_holding(root: Path, values: set[bytes]) -> list[str]:
    found = []
    for path in root.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            if any(v in data for v in values):
                found.append(str(path.relative_to(root)))
    return found


def test_a_sync_killed_while_loading_is_finished_by_the_next_and_every_connection_syncs(tmp_path: Path) -> None:
    root = tmp_path / "data"
    normalized = root / "dlt" / "gmail" / "load" / "normalized"
    kill_when(_gmail(root), lambda: normalized.exists() and any(normalized.iterdir()))
    assert len(list(normalized.iterdir())) == 1  # a load package left pending by the kill

    code, out, err = _finish(_gmail(root))
    assert code == 0, err[-3000:]
    assert [line.split('"')[3] for line in out.splitlines()] == list(GMAIL)
    assert _held(root) == [(c, MESSAGES, MESSAGES) for c in GMAIL] + [(c, CONTACTS, CONTACTS) for c in GMAIL]
    assert list(normalized.iterdir()) == []


def test_a_sync_killed_with_its_work_database_open_leaves_no_plaintext_and_the_next_removes_it(
        tmp_path: Path) -> None:
    """Protection keeps a batch's plaintext lookups in memory, so the work database's file never holds an
    address or subject, watched every millisecond until the kill; the killed sync's file is removed by the
    next."""
    root = tmp_path / "data"
    work = root / "work"
    plaintexts = _plaintexts()
    seen: list[str] = []  # work files caught holding a plaintext

    def watch() -> bool:
        files = list(work.glob("mail-*")) if work.exists() else []
        for f in files:
            try:
                data = f.read_bytes()
            except FileNotFoundError:  # a connection's sync ended between listing and reading
                continue
            if any(v in data for v in plaintexts):
                seen.append(f.name)
        loading = root / "dlt" / "gmail" / "load"
        return any(f.suffix == ".duckdb" for f in files) and loading.exists() and any(loading.rglob("*.parquet"))

    kill_when(_gmail(root), watch)
    assert seen == []
    assert [f.suffix for f in work.glob("mail-*.duckdb")] == [".duckdb"]  # the killed sync's work database
    assert _files_holding(root, plaintexts) == []

    code, _, err = _finish(_gmail(root))
    assert code == 0, err[-3000:]
    assert _files_holding(root, plaintexts) == []
    assert list(work.iterdir()) == []
    assert _held(root) == [(c, MESSAGES, MESSAGES) for c in GMAIL] + [(c, CONTACTS, CONTACTS) for c in GMAIL]


def test_one_connection_with_a_dead_token_does_not_stop_the_others(tmp_path: Path) -> None:
    root = tmp_path / "data"
    registry = ConnectionRegistry(root / "connections" / "connections.sqlite")
    with Keyring.open(root / "keys" / "keyring.sqlite", load_master_key(None, root / "keys" / "master.key", True)) \
            as cipher:
        seed_connections(registry, cipher, sandbox_accounts(MESSAGES, CONTACTS))
        registry.store_access_token(cipher, registry.get(GMAIL[0]), "ya29.dead-token-7f3c")

    code, out, err = _finish(_gmail(root))
    assert code == 1
    lines = out.splitlines()
    assert [line.split('"')[3] for line in lines] == list(GMAIL)
    # The sandbox refuses the token and there is no refresh token: the error's class, never the token.
    assert lines[0] == '{"connection": "ws_0001-gmail-0", "error": "RefreshError"}' and "dead-token" not in out + err
    assert _held(root) == [(c, MESSAGES, MESSAGES) for c in GMAIL[1:]] + [(c, CONTACTS, CONTACTS) for c in GMAIL[1:]]
    assert registry.get(GMAIL[0]).status == "erroring"


def test_the_next_sync_removes_what_dead_syncs_left_and_keeps_a_running_ones(tmp_path: Path) -> None:
    from pipelines.mail_common.stage import WorkDatabase

    work = tmp_path / "work"
    work.mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid, running_pid = int(dead.stdout), os.getppid()  # a process that has ended, one that still runs
    left = {f"mail-{dead_pid}-{'a' * 32}.duckdb.wal": b"ann@example.com", f"mail-{'b' * 32}.duckdb": b"subject",
            f"mail-{running_pid}-{'c' * 32}.duckdb": b"in use", "notes.txt": b"not a work database"}
    for name, data in left.items():
        (work / name).write_bytes(data)
    (work / f"mail-{dead_pid}-{'d' * 32}.duckdb.tmp").mkdir()  # a spill folder
    database = WorkDatabase(work, None)
    assert sorted(p.name for p in work.iterdir()) == sorted(
        [f"mail-{running_pid}-{'c' * 32}.duckdb", "notes.txt", database.path.name])
    database.close()
    assert sorted(p.name for p in work.iterdir()) == [f"mail-{running_pid}-{'c' * 32}.duckdb", "notes.txt"]
