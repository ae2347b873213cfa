"""The landed-file lifecycle: raw files stay readable only for a short replay window after they are loaded,
then move into an encrypted archive that erasure reaches by destroying keys (or are deleted).

Why: a landed file is a plaintext copy of every event. Kept for ever, it holds people in the clear long after
the warehouse encrypted, anonymised or erased them, and every erasure had to scan all of them (about 21 s of
a 22 s erasure on the 4.9M-event benchmark). The `[[landed]]` rule of `retention_policy.toml` says how long.

The archive (`<landing URL>.archive/<same relative path>.archive.parquet`, one per landed file) groups a
file's lines by (workspace, set of identifiers): each group is compressed and sealed with AES-GCM under a
fresh data key, and that key is split into XOR shares, one per identifier of the group, each encrypted by
the keyring under that identifier's subject key. A group is readable only while every identifier it names
still has its key, so erasing any person named on a line (their identifiers' keys are destroyed, as for
their rows) makes the line unreadable without touching the archive. A group naming no identifier is
sealed under the workspace key (offboarding a workspace destroys it). Lines naming someone on the
suppression list (erased earlier, landed again) are left out rather than sealed under keys created afresh. Blind indexes stored beside the shares
are the subject references the keyring needs; no plaintext identifier is stored.

Only files the zone's ledger records as loaded are ever archived or deleted. The sweep and the erasure
scrub hold the same zone lock, so they never rewrite one file at once.
"""

from __future__ import annotations

import base64
import datetime as dt
import os
import zlib
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import duckdb
import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from pipelines.catalog import LandingZone
from pipelines.privacy.landed import (
    ZoneFiles, lines_table, line_fields_sql, read_bytes, replace_file, scratch_dir, split_lines, subject_forms,
    zone_files, zone_lock,
)
from pipelines.privacy.landed_index import remove_index
from pipelines.privacy.policy import LandedRule
from pipelines.privacy.protect import blind_index_by_kind
from pipelines.privacy.suppression import suppressed_sql
from pipelines.sql import qualified
from pipelines.warehouse import table_exists

ARCHIVE_SUFFIX = ".archive.parquet"
_AAD = b"gtg/landed-archive/v1|"
_KEY_BYTES = 32
_NONCE_BYTES = 12


def archive_url(landing_url: str) -> str:
    """Where a landing zone's archive lives: beside the landing location, outside the trackers' glob."""
    return landing_url.rstrip("/") + ".archive"


@dataclass
class SweepReport:
    """What one sweep did (Dagster metadata and the audit entry): counts only."""

    files_archived: int = 0
    files_deleted: int = 0
    lines_archived: int = 0
    lines_suppressed: int = 0  # lines naming someone on the suppression list: left out of the archive
    archives_expired: int = 0
    links_outside_root: int = 0


@dataclass
class Overdue:
    """What the `within_retention` check counts: loaded files still in the clear after their replay window,
    and archives kept past the rule's `archive_days`."""

    files_in_clear: int
    archives: int

    @property
    def total(self) -> int:
        return self.files_in_clear + self.archives


def sweep(zone: LandingZone, url: str, rule: LandedRule, con: duckdb.DuckDBPyConnection, cipher,
          now: dt.datetime, work_dir: Path | None = None) -> SweepReport:
    """Archive (or delete) every loaded file of `zone` past its replay window, and delete expired archives.
    `con` reads the zone's ledger; scratch copies go to the work folder."""
    files = zone_files(zone, url)
    report = SweepReport(links_outside_root=files.links_outside)
    scratch = scratch_dir(zone, work_dir)
    archive = _archive_files(url)
    suppressed = _suppressed(con)
    with zone_lock(files, scratch):
        for path, day in _past_window(files, _loaded(con, zone), rule, now):
            if rule.action == "archive":
                archived, left_out = _archive_file(zone, files, path, day, archive, cipher, scratch, suppressed)
                report.lines_archived += archived
                report.lines_suppressed += left_out
                report.files_archived += 1
            else:
                report.files_deleted += 1
            files.fs.rm_file(path)
            remove_index(files, url, path)
        for path in _expired_archives(archive, rule, now):
            archive.fs.rm_file(path)
            report.archives_expired += 1
    return report


def overdue(zone: LandingZone, url: str, rule: LandedRule, con: duckdb.DuckDBPyConnection,
            now: dt.datetime) -> Overdue:
    """Files and archives of `zone` kept longer than `rule` allows (zero of each once the sweep ran)."""
    files = zone_files(zone, url)
    return Overdue(len(_past_window(files, _loaded(con, zone), rule, now)),
                   len(_expired_archives(_archive_files(url), rule, now)))


def restore(zone: LandingZone, url: str, archived: str, cipher) -> bytes:
    """The landed file an archive holds, as far as it is still readable: the lines of erased people (any
    identifier's key destroyed) are left out, every other line comes back byte for byte, in order."""
    archive = _archive_files(url)
    with archive.fs.open(archived, "rb") as handle:
        table = pq.read_table(handle)
    meta = {k.decode(): v.decode() for k, v in (table.schema.metadata or {}).items()}
    groups = table.to_pylist()
    owners = [i for i, g in enumerate(groups) for _ in g["shares"]]
    shares = cipher.decrypt_many([groups[i]["ws"] for i in owners],
                                 [r for g in groups for r in g["refs"]],
                                 [s for g in groups for s in g["shares"]], _context(zone)).to_pylist()
    parts: dict[int, list[bytes]] = defaultdict(list)
    erased: set[int] = set()  # a key is gone: someone named on these lines was erased
    for i, share in zip(owners, shares):
        if share is None:
            erased.add(i)
        else:
            parts[i].append(base64.b64decode(share))
    lines: dict[int, bytes] = {}
    for i, group in enumerate(groups):
        if i in erased:
            continue
        key = _xor(parts[i])
        payload = AESGCM(key).decrypt(group["nonce"], group["payload"], _aad(zone, meta["source"], group["ws"]))
        lines.update(zip(group["line_nos"], zlib.decompress(payload).split(b"\n")))
    kept = [lines[n] for n in sorted(lines)]
    return b"\n".join(kept) + (b"\n" if kept and meta["ends_with_newline"] == "1" else b"")


# -- internals --------------------------------------------------------------------------------------------


def _context(zone: LandingZone) -> str:
    """The keyring context of a zone's archive key shares (they cannot be replayed as column values)."""
    return f"landed.{zone.name}"


def _aad(zone: LandingZone, source: str, workspace: str) -> bytes:
    return _AAD + f"{zone.name}|{source}|{workspace}".encode()


def _xor(parts: list[bytes]) -> bytes:
    """The XOR of equal-length byte strings: a key split into shares, or the shares joined back."""
    out = 0
    for part in parts:
        out ^= int.from_bytes(part, "big")
    return out.to_bytes(_KEY_BYTES, "big")


def _archive_files(url: str) -> ZoneFiles:
    fs, root = fsspec.core.url_to_fs(archive_url(url))
    return ZoneFiles(fs, root, [], 0)


def _loaded(con: duckdb.DuckDBPyConnection, zone: LandingZone) -> dict[str, dt.date]:
    """URL → arrival day of every file the zone's ledger records as loaded."""
    dataset, name = zone.ledger.split(".", 1)
    if not table_exists(con, dataset, name):
        return {}
    return dict(con.execute(f"SELECT file_url, received_date FROM {qualified(zone.ledger)}").fetchall())


def _suppressed(con: duckdb.DuckDBPyConnection) -> set[tuple[str, bytes]]:
    """(workspace, blind index) of every identity erasure suppressed: their lines are never archived (their
    keys are gone; archiving would create fresh ones and make an erased person readable again)."""
    listed = suppressed_sql(con)
    return {(ws, bytes(ref)) for ws, ref in con.execute(listed).fetchall()} if listed else set()


def _past_window(files: ZoneFiles, loaded: dict[str, dt.date], rule: LandedRule,
                 now: dt.datetime) -> list[tuple[str, dt.date]]:
    """Loaded files whose replay window (`clear_days` after their arrival day) is over. A file not in the
    ledger (not loaded yet, or landed again) is never touched."""
    today = now.astimezone(dt.timezone.utc).date()
    due = []
    for path in files.paths:
        day = loaded.get(files.url(path))
        if day is not None and today > day + dt.timedelta(days=rule.clear_days):
            due.append((path, day))
    return due


def _expired_archives(archive: ZoneFiles, rule: LandedRule, now: dt.datetime) -> list[str]:
    if rule.action != "archive" or not archive.fs.exists(archive.root):
        return []
    today = now.astimezone(dt.timezone.utc).date()
    expired = []
    for path in sorted(archive.fs.glob(f"{archive.root.rstrip('/')}/**/*{ARCHIVE_SUFFIX}")):
        with archive.fs.open(path, "rb") as handle:
            day = dt.date.fromisoformat(pq.read_schema(handle).metadata[b"received_date"].decode())
        if today > day + dt.timedelta(days=rule.archive_days):
            expired.append(path)
    return expired


def _archive_file(zone: LandingZone, files: ZoneFiles, path: str, day: dt.date, archive: ZoneFiles, cipher,
                  scratch: Path, suppressed: set[tuple[str, bytes]]) -> tuple[int, int]:
    """Write the archive of one landed file (replacing a half-done earlier one); returns (lines archived,
    lines left out because someone named on them is on the suppression list: erased, never re-keyed)."""
    data = read_bytes(files, path)
    lines = split_lines(data)
    batch = lines_table(lines)  # noqa: F841 - read by DuckDB's replacement scan
    # Each identifier is (which field, value): its subject reference is its blind index under that field's
    # kind, exactly as erasure computes it, so erasing the person destroys the key of the share it opens.
    identifiers = "flatten([" + ", ".join(
        f"list_transform(list_filter({f}, lambda x: x IS NOT NULL AND x <> ''), lambda x: {{'which': {i}, 'v': x}})"
        for i, f in enumerate(zone.subject_fields, 1)) + "])"
    with duckdb.connect() as con:
        groups = con.sql(
            f"SELECT ws, ids, list(line_no ORDER BY line_no) AS line_nos FROM ("
            f"SELECT line_no, ws, list_sort(list_distinct({identifiers})) AS ids "
            f"FROM ({line_fields_sql(zone, 'batch')})) GROUP BY ws, ids ORDER BY min(line_no)"
        ).to_arrow_table().to_pylist()
    subjects = [group["ids"] or [None] for group in groups]  # no identifier: sealed under the workspace key
    share_ws = [g["ws"] for g, ids in zip(groups, subjects) for _ in ids]
    flat = [i for ids in subjects for i in ids]
    which = pa.array([i["which"] if i else 0 for i in flat], pa.int64())
    refs = blind_index_by_kind(cipher, pa.array(share_ws, pa.string()), which,
                               subject_forms(zone, which, pa.array([i["v"] if i else None for i in flat], pa.string())),
                               list(zone.subject_kinds)).to_pylist()
    source = path[len(files.root.rstrip("/")) + 1:]
    raw = lines.to_pylist()
    kept_ws: list[str] = []
    kept_refs: list[bytes | None] = []
    share_values: list[str] = []
    records = []
    left_out = offset = 0
    for group, ids in zip(groups, subjects):
        group_refs = refs[offset:offset + len(ids)]
        offset += len(ids)
        if any((group["ws"], ref) in suppressed for ref in group_refs):
            left_out += len(group["line_nos"])
            continue
        key = os.urandom(_KEY_BYTES)
        parts = [os.urandom(_KEY_BYTES) for _ in ids[1:]]
        parts.insert(0, _xor([key, *parts]) if parts else key)
        kept_ws += [group["ws"]] * len(ids)
        kept_refs += group_refs
        share_values += [base64.b64encode(p).decode() for p in parts]
        nonce = os.urandom(_NONCE_BYTES)
        payload = zlib.compress(b"\n".join(raw[n] for n in group["line_nos"]))
        records.append({"ws": group["ws"], "line_nos": group["line_nos"], "nonce": nonce,
                        "payload": AESGCM(key).encrypt(nonce, payload, _aad(zone, source, group["ws"])),
                        "refs": group_refs})
    sealed = cipher.encrypt_with_refs(kept_ws, kept_refs, share_values, _context(zone), create=True).to_pylist()
    offset = 0
    for record in records:
        record["shares"] = sealed[offset:offset + len(record["refs"])]
        offset += len(record["refs"])
    table = pa.Table.from_pylist(records, schema=pa.schema([
        ("ws", pa.string()), ("line_nos", pa.list_(pa.int64())), ("nonce", pa.binary()), ("payload", pa.binary()),
        ("shares", pa.list_(pa.binary())), ("refs", pa.list_(pa.binary())),
    ], metadata={"zone": zone.name, "source": source, "received_date": day.isoformat(),
                 "lines": str(len(raw)), "ends_with_newline": "1" if data.endswith(b"\n") else "0"}))
    replace_file(archive, f"{archive.root.rstrip('/')}/{source}{ARCHIVE_SUFFIX}", scratch,
                 lambda local: pq.write_table(table, local), mode=0o600)
    return len(raw) - left_out, left_out
