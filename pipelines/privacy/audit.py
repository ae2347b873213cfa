"""The privacy audit log: append-only, hash-chained JSON lines, with no personal data in them.

Every retention pass and every data-subject request appends one entry: who or what asked, when, what was
done, to which tables and how many rows. Entries hold ids, counts and table names only — never an email,
an id of a person or a value — so the log itself never needs erasing. Each entry carries the hash of the
one before, so a deleted, reordered or edited entry breaks the chain and `verify()` (an asset check) says
where. The hash is an HMAC keyed by a platform key of the keyring (`Keyring.platform_key(AUDIT_KEY_NAME)`):
whoever can write the file but not read the keyring cannot drop an entry and re-chain the rest.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import hmac
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from pipelines.paths import private_dir

GENESIS = "0" * 64
AUDIT_KEY_NAME = "audit-chain"
_TAIL_BLOCK = 8192  # bytes read at a time from the end of the log to find its last entry


@dataclass(frozen=True)
class Entry:
    """One entry to append: ids, codes and counts only (the log is never erased)."""

    actor: str
    action: str
    tables: Mapping[str, int] | None = None
    request_id: str | None = None
    workspace_id: str | None = None
    counts: Mapping[str, int | str] | None = None


@dataclass(frozen=True)
class ChainStatus:
    intact: bool
    entries: int
    broken_at: int | None = None


def _digest(entry: Mapping[str, Any], key: bytes) -> str:
    body = {k: v for k, v in entry.items() if k != "hash"}
    return hmac.digest(key, json.dumps(body, sort_keys=True, separators=(",", ":")).encode(), "sha256").hex()


class AuditLog:
    """One JSONL file; appends are serialised with an exclusive file lock across processes. `key` is the
    chain's HMAC key: `AuditLog.of(path, keyring)` takes the platform's."""

    def __init__(self, path: str | Path, key: bytes) -> None:
        if not isinstance(key, bytes) or len(key) < 32:
            raise ValueError("the audit chain needs a key of at least 32 bytes")
        self.path = Path(path)
        self._key = key

    @classmethod
    def of(cls, path: str | Path, keyring) -> AuditLog:
        """The audit log at `path`, chained with the keyring's audit key."""
        return cls(path, keyring.platform_key(AUDIT_KEY_NAME))

    def append(
        self,
        *,
        actor: str,
        action: str,
        tables: Mapping[str, int] | None = None,
        request_id: str | None = None,
        workspace_id: str | None = None,
        counts: Mapping[str, int | str] | None = None,
    ) -> dict[str, Any]:
        """Append one entry and return it. Pass counts and codes only: the log is never erased."""
        return self.append_many([Entry(actor=actor, action=action, tables=tables, request_id=request_id,
                                       workspace_id=workspace_id, counts=counts)])[0]

    def append_many(self, entries: Sequence[Entry]) -> list[dict[str, Any]]:
        """Append several entries, chained in order, with one lock, one write and one fsync (a batch of a
        thousand requests must not cost a thousand fsyncs); returns them as written. A crash mid-write can
        only leave a torn last line, which `verify()` reports like any broken entry."""
        if not entries:
            return []
        private_dir(self.path.parent)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "r+", encoding="utf-8") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            last = self._last(handle)
            seq, prev = (last["seq"], last["hash"]) if last else (0, GENESIS)
            at = dt.datetime.now(dt.timezone.utc).isoformat(timespec="microseconds")
            written = []
            for item in entries:
                seq += 1
                entry = {
                    "seq": seq,
                    "at": at,
                    "actor": item.actor,
                    "action": item.action,
                    "request_id": item.request_id,
                    "workspace_id": item.workspace_id,
                    "tables": dict(item.tables or {}),
                    "counts": dict(item.counts or {}),
                    "prev": prev,
                }
                entry["hash"] = prev = _digest(entry, self._key)
                written.append(entry)
            handle.write("".join(json.dumps(entry, sort_keys=True) + "\n" for entry in written))
            handle.flush()
            os.fsync(handle.fileno())
        return written

    @staticmethod
    def _last(handle) -> dict[str, Any] | None:
        """The last entry, read backwards from the end of the file: the log only grows, and an append must
        not cost a read of every entry ever written."""
        fd = handle.fileno()
        pos = os.fstat(fd).st_size
        tail = b""
        while pos > 0:
            step = min(_TAIL_BLOCK, pos)
            pos -= step
            tail = os.pread(fd, step, pos) + tail
            lines = [line for line in tail.split(b"\n") if line.strip()]
            if len(lines) > 1 or (lines and pos == 0):  # a line before it: the last one is whole
                return json.loads(lines[-1])
        return None

    def entries(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        with self.path.open(encoding="utf-8") as handle:
            return [json.loads(line) for line in handle if line.strip()]

    def verify(self) -> ChainStatus:
        """Walk the chain: every entry's keyed hash matches its content and names its predecessor."""
        prev, seq = GENESIS, 0
        entries = self.entries()
        for entry in entries:
            seq += 1
            if entry.get("seq") != seq or entry.get("prev") != prev or not hmac.compare_digest(str(entry.get("hash")), _digest(entry, self._key)):
                return ChainStatus(False, len(entries), seq)
            prev = entry["hash"]
        return ChainStatus(True, len(entries))
