"""Where the platform keeps its files, and the environment variables that move them.

Plain Python (no Dagster), so a source run on its own and the Dagster resources agree on the defaults:
everything lives under one data folder inside the project unless told otherwise.
"""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def data_dir() -> Path:
    """GTG_DATA_DIR, default `<project>/data`: the warehouse, keys, landing files and dlt's working folders."""
    return Path(os.environ.get("GTG_DATA_DIR") or PROJECT_ROOT / "data")


def warehouse_path() -> Path:
    """GTG_WAREHOUSE_PATH, default `<data>/warehouse.duckdb`."""
    return Path(os.environ.get("GTG_WAREHOUSE_PATH") or data_dir() / "warehouse.duckdb")


def events_landing_url() -> str:
    """GTG_EVENTS_LANDING_URL, default `<data>/landing/events`; any fsspec URL (s3://…) works."""
    return os.environ.get("GTG_EVENTS_LANDING_URL") or str(data_dir() / "landing" / "events")


def keyring_path() -> Path:
    """GTG_KEYRING_PATH, default `<data>/keys/keyring.sqlite`: wrapped workspace and subject keys."""
    return Path(os.environ.get("GTG_KEYRING_PATH") or data_dir() / "keys" / "keyring.sqlite")


def master_key_file() -> Path:
    """GTG_MASTER_KEY_FILE, default `<data>/keys/master.key` (used when GTG_MASTER_KEY is not set)."""
    return Path(os.environ.get("GTG_MASTER_KEY_FILE") or data_dir() / "keys" / "master.key")


def dlt_dir() -> Path:
    """dlt's pipelines folder, kept inside the data folder so nothing lands in ~/.dlt."""
    return data_dir() / "dlt"


def work_dir() -> Path:
    """Scratch space of running ingestions and of the landed-file scrub and archive (wiped at each start)."""
    return data_dir() / "work"


def is_within(path: str | Path, root: str | Path) -> bool:
    """Whether `path`, with every symlink resolved, is `root` or inside it (resolved too). A link in the
    landing folder that points elsewhere is outside: the platform neither reads nor rewrites it."""
    resolved, base = Path(path).resolve(), Path(root).resolve()
    return resolved == base or base in resolved.parents


def request_inbox_path() -> Path:
    """The data-subject request inbox, a SQLite file the CRM app writes: `<data>/privacy/requests.sqlite`."""
    return data_dir() / "privacy" / "requests.sqlite"


def audit_log_path() -> Path:
    """The privacy audit log: `<data>/privacy/audit.jsonl`."""
    return data_dir() / "privacy" / "audit.jsonl"


def connections_path() -> Path:
    """GTG_CONNECTIONS_PATH, default `<data>/connections/connections.sqlite`: the mail connection registry."""
    return Path(os.environ.get("GTG_CONNECTIONS_PATH") or data_dir() / "connections" / "connections.sqlite")



def exports_dir() -> Path:
    """GTG_EXPORTS_DIR, default `<data>/exports`: access-request exports (one JSON file per request)."""
    return Path(os.environ.get("GTG_EXPORTS_DIR") or data_dir() / "exports")


def is_sandbox() -> bool:
    """GTG_ENV: `sandbox` (default) generates a local master key when none is given; `production` refuses."""
    return (os.environ.get("GTG_ENV") or "sandbox") == "sandbox"
