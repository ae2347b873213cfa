"""Every path the platform writes is private: after a full `python -m cli run` (events, mail sync, retention,
requests, analytics), an access request with its export, an erasure and a key rotation, every file under
the data folder and DAGSTER_HOME is 0600 and every folder 0700 — whatever the umask of the shell that
started it."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(420)

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    """A CLI command started from a shell whose umask lets everyone read (022)."""
    return subprocess.run([sys.executable, "-m", "cli", *args], cwd=PROJECT_ROOT, env=env, capture_output=True,
                          text=True, timeout=300, preexec_fn=lambda: os.umask(0o022))


def test_every_path_a_full_run_writes_is_private(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GTG_")}
    env.update(GTG_ENV="sandbox", GTG_DATA_DIR=str(tmp_path / "data"), DAGSTER_HOME=str(tmp_path / "dagster_home"),
               GTG_SANDBOX_MAIL_MESSAGES="20", GTG_SANDBOX_MAIL_CONTACTS="5")
    run = _cli(env, "run", "--events", "600", "--days", "2")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    submitted = _cli(env, "privacy", "submit", "--type", "access", "--workspace", "ws_0001", "--user-id", "u_000001")
    assert submitted.returncode == 0, submitted.stderr
    erasure = _cli(env, "privacy", "submit", "--type", "erasure", "--workspace", "ws_0001", "--user-id", "u_000002")
    assert erasure.returncode == 0, erasure.stderr
    processed = _cli(env, "privacy", "process")
    assert processed.returncode == 0, processed.stdout[-3000:] + processed.stderr[-3000:]
    rotated = _cli(env, "keys", "rotate-master")
    assert rotated.returncode == 0, rotated.stderr

    data = tmp_path / "data"
    exports = list((data / "exports").iterdir())
    assert len(exports) == 1 and exports[0].name.startswith("dsr_")  # the access export is among the files walked
    for expected in ("warehouse.duckdb", "keys/keyring.sqlite", "keys/master.key", "privacy/requests.sqlite",
                     "privacy/audit.jsonl", "connections/connections.sqlite"):
        assert (data / expected).is_file(), expected
    wrong: dict[str, str] = {}
    kinds: Counter = Counter()
    for root in (data, tmp_path / "dagster_home"):
        for path in [root, *root.rglob("*")]:
            info = path.lstat()
            mode = stat.S_IMODE(info.st_mode)
            if stat.S_ISDIR(info.st_mode):
                kinds["folders"] += 1
                if mode != 0o700:
                    wrong[str(path.relative_to(tmp_path))] = oct(mode)
            else:
                kinds["files"] += 1
                if mode != 0o600:
                    wrong[str(path.relative_to(tmp_path))] = oct(mode)
    assert wrong == {}
    assert kinds["files"] > 50 and kinds["folders"] > 10
