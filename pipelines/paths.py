"""Where the platform keeps its files, the environment variables that move them, and the switch between
the sandbox and production.

Plain Python (no Dagster), so a source run on its own and the Dagster resources agree on the defaults:
everything lives under one data folder inside the project unless told otherwise. Every file the platform
writes is private to its owner: `private_process()` (run when the `pipelines` package is imported, so every
entry point passes through it) sets the process umask to 077, and `private_dir()` makes the folders it
creates (or finds) 0700.
"""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
ENV_VARIABLE = "GTG_ENV"
ENVIRONMENTS = ("sandbox", "production")
PRIVATE_UMASK = 0o077


class PlatformEnvironmentError(RuntimeError):
    """GTG_ENV is missing or not one of ENVIRONMENTS: the platform refuses to guess."""


def environment() -> str:
    """GTG_ENV: `sandbox` (generated master key and events, local fake mail servers) or `production` (every
    secret required, nothing generated). There is no default, so a deployment that forgot the variable stops
    instead of falling back to the sandbox: `make run`, `make test` and the tests' conftest set `sandbox`."""
    value = os.environ.get(ENV_VARIABLE, "").strip()
    if value not in ENVIRONMENTS:
        shown = "not set" if not value else "not one of the known values"
        raise PlatformEnvironmentError(f"{ENV_VARIABLE} is {shown}: set {ENV_VARIABLE}=production for a deployment, "
                                f"or {ENV_VARIABLE}=sandbox for the local sandbox (what `make run` does)")
    return value


def is_sandbox() -> bool:
    """Whether GTG_ENV says `sandbox` (it must be set: see `environment`)."""
    return environment() == "sandbox"


def private_process() -> None:
    """Files and folders this process creates are readable by its owner only (0600 / 0700)."""
    os.umask(PRIVATE_UMASK)


def private_dir(path: Path) -> Path:
    """Create `path` (and missing parents) as 0700, and make it 0700 if it existed with a wider mode."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if path.stat().st_mode & 0o077:
        path.chmod(0o700)
    return path


class OutsideFolderError(ValueError):
    """A path resolved outside the folder the platform owns for it (`..`, an absolute path, a link)."""


def inside(root: Path, name: str) -> Path:
    """`root / name` resolved (links followed), refused unless it stays strictly inside `root` resolved.
    Every path the platform derives from outside input (a request id, a file name) goes through here."""
    base = Path(root).resolve()
    target = (base / name).resolve()
    if target == base or base not in target.parents:
        raise OutsideFolderError(f"refusing a path outside {base}")
    return target


def escaped_name(name: str) -> str:
    """A name listed from the file system as text: Python maps bytes of a name that are not UTF-8 to lone
    surrogates, which no UTF-8 column, Parquet file or JSON document can hold; they become `\\xNN`. A name
    that is text comes back unchanged, so `escaped_name(n) != n` tells that a landed file cannot be named
    in the ledger as it is."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


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


def request_inbox_path() -> Path:
    """The data-subject request inbox, a SQLite file the CRM app writes: `<data>/privacy/requests.sqlite`."""
    return data_dir() / "privacy" / "requests.sqlite"


def audit_log_path() -> Path:
    """The privacy audit log: `<data>/privacy/audit.jsonl`."""
    return data_dir() / "privacy" / "audit.jsonl"


def connections_path() -> Path:
    """GTG_CONNECTIONS_PATH, default `<data>/connections/connections.sqlite`: the mail connection registry."""
    return Path(os.environ.get("GTG_CONNECTIONS_PATH") or data_dir() / "connections" / "connections.sqlite")



def workspaces_path() -> Path:
    """GTG_WORKSPACES_PATH, default `<data>/workspaces/workspaces.sqlite`: the workspaces the platform knows."""
    return Path(os.environ.get("GTG_WORKSPACES_PATH") or data_dir() / "workspaces" / "workspaces.sqlite")


def evidence_page_path() -> Path:
    """GTG_EVIDENCE_PAGE, default `<data>/policy_evidence.html`: the privacy policy's evidence, for auditors."""
    return Path(os.environ.get("GTG_EVIDENCE_PAGE") or data_dir() / "policy_evidence.html")


def exports_dir() -> Path:
    """GTG_EXPORTS_DIR, default `<data>/exports`: access-request exports (one JSON file per request)."""
    return Path(os.environ.get("GTG_EXPORTS_DIR") or data_dir() / "exports")


def crm_app_sandbox_path() -> Path:
    """The sandbox's generated app database (SQLite), used while GTG_CRM_APP_DATABASE_URL is unset."""
    return data_dir() / "crm_app" / "app.sqlite"


def contacts_landing_path() -> Path:
    """GTG_CONTACTS_LANDING_URL, default `<data>/landing/contacts`: uploaded contact lists, a folder per workspace."""
    return Path(os.environ.get("GTG_CONTACTS_LANDING_URL") or data_dir() / "landing" / "contacts")
