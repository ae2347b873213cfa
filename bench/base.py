"""Generated warehouses shared by the benchmarks: landed events loaded once by the real pipeline, reused."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from bench.ingest import DAYS, MARKER, ensure_generated

BASE_MARKER = "_built.json"


def ensure_warehouse(out: Path, events: int, days: int = DAYS) -> tuple[Path, Path]:
    """(landing, warehouse folder) for `events` lines over `days` days, loaded once and reused."""
    from pipelines.privacy.keyring import Keyring, load_master_key
    from pipelines.usage_events import ingest

    landing, generated = ensure_generated(out, events, gzip=False, days=days)
    base = out / "data" / (f"warehouse-{events}" if days == DAYS else f"warehouse-{events}-d{days}")
    if (base / BASE_MARKER).exists():
        return landing, base
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir(parents=True)
    print(f"loading {events} events into a base warehouse (not measured) ...", flush=True)
    key = load_master_key(None, base / "keys" / "master.key", True)
    with Keyring.open(base / "keys" / "keyring.sqlite", key) as cipher:
        report = ingest(str(landing), cipher, warehouse_path=base / "warehouse.duckdb", dlt_dir=base / "dlt",
                        work_dir=base / "work", workspaces=generated["stats"]["workspaces"])
    shutil.rmtree(base / "work", ignore_errors=True)
    (base / BASE_MARKER).write_text(json.dumps({"events_loaded": report.events_loaded}))
    return landing, base


def copy_warehouse(base: Path, run: Path, landing: Path | None = None) -> None:
    """A fresh copy of a base warehouse and its keys in `run` (and of its landed files, when given), so a
    measurement never sees another's changes."""
    shutil.rmtree(run, ignore_errors=True)
    run.mkdir(parents=True)
    durable_copy(base / "warehouse.duckdb", run / "warehouse.duckdb")
    shutil.copytree(base / "keys", run / "keys", copy_function=durable_copy)
    if landing is not None:
        shutil.copytree(landing, run / "landing", ignore=shutil.ignore_patterns(MARKER), copy_function=durable_copy)


def durable_copy(source: Path | str, target: Path | str) -> None:
    """Copy a file and flush the copy to disk: otherwise the first commit measured on it pays for writing the
    whole copy back (the file system flushes pending data at the next fsync: the warehouse's first commit, the
    keyring's first key destruction)."""
    shutil.copy2(source, target)
    fd = os.open(target, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def open_keyring(folder: Path):
    """The keyring of a warehouse folder (its key file must exist)."""
    from pipelines.privacy.keyring import Keyring, load_master_key

    return Keyring.open(folder / "keys" / "keyring.sqlite", load_master_key(None, folder / "keys" / "master.key", False))
