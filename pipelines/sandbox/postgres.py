"""A throwaway PostgreSQL server for the tests and the benchmarks: Debian's server programs, a cluster in a
temporary folder, listening on a free port of 127.0.0.1 only (and a socket inside that folder), stopped and
deleted on exit. PostgreSQL refuses to run as root, so as root it runs as the `postgres` user that Debian's
package creates. `make test` installs the package on a machine that lacks it."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Iterator


def server_programs() -> Path:
    """The folder of `initdb` and `pg_ctl`."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("pg_ctl")
    if not on_path:
        raise RuntimeError("PostgreSQL's server programs are not installed: `apt-get install postgresql` "
                           "(what `make test` does on a fresh machine)")
    return Path(on_path).resolve().parent


def _free_port() -> int:
    with closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def local_postgres() -> Iterator[str]:
    """Start a server; yields its base SQLAlchemy URL (`postgresql+psycopg://postgres@127.0.0.1:PORT`)."""
    bin_dir = server_programs()
    root = Path(tempfile.mkdtemp(prefix="gtg-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:
        user = pwd.getpwnam("postgres")
        os.chown(root, user.pw_uid, user.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    data = root / "data"
    try:
        subprocess.run([*as_user, str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
                        "-E", "UTF8", "--no-sync"], check=True, capture_output=True)
        port = None
        for _ in range(5):  # another process may take the free port between the look-up and the start
            candidate = _free_port()
            started = subprocess.run(
                [*as_user, str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(root / "server.log"), "-w", "-t",
                 "60", "-o", f"-p {candidate} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off", "start"],
                capture_output=True)
            if started.returncode == 0:
                port = candidate
                break
        if port is None:
            raise RuntimeError(f"PostgreSQL did not start: {(root / 'server.log').read_text()[-2000:]}")
        try:
            yield f"postgresql+psycopg://postgres@127.0.0.1:{port}"
        finally:
            subprocess.run([*as_user, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"],
                           capture_output=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
