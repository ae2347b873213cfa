"""GTG_ENV decides between the sandbox and production, and nothing falls back: without the variable the
platform refuses to start; in production every secret is required when the definitions load (the error
names the variable) and nothing of the sandbox (generated key, events or mail connections) is ever made."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

from pipelines.google_ads.connect import APP_ENV as GOOGLE_ADS_ENV
from pipelines.mail_common.endpoints import OAUTH_ENV
from pipelines.privacy.keyring import generate_master_key_text

PROJECT_ROOT = Path(__file__).resolve().parents[2]
LOAD = "import definitions; print(sorted(definitions.defs.resources))"


def _run(data: Path, args: list[str], **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("GTG_")}
    clean.update(GTG_DATA_DIR=str(data), DAGSTER_HOME=str(data.parent / "dagster_home"), **env)
    return subprocess.run([sys.executable, *args], cwd=PROJECT_ROOT, env=clean, capture_output=True, text=True,
                          timeout=180)


def _sandbox_made(root: Path) -> list[str]:
    """What only the sandbox makes: a generated master key, generated events, seeded mail connections (an
    empty keyring or connection registry is what any run with a given master key opens)."""
    made = sorted(str(p.relative_to(root)) for p in root.rglob("*")
                  if p.is_file() and ("landing" in p.relative_to(root).parts or p.name.startswith("master.key")))
    for registry in root.rglob("connections.sqlite"):
        with closing(sqlite3.connect(registry)) as con:
            made += [f"connection {row[0]}" for row in con.execute("SELECT connection_id FROM connections")]
    return made


def _app_database(root: Path) -> str:
    """A CRM app database with the app's tables and no rows (production reads a real one; none is generated)."""
    import sqlalchemy as sa

    from pipelines.crm_app.app_schema import metadata

    url = f"sqlite:///{root / 'app.sqlite'}"
    engine = sa.create_engine(url)
    metadata.create_all(engine)
    engine.dispose()
    return url


def test_without_gtg_env_nothing_starts(tmp_path: Path) -> None:
    data = tmp_path / "data"
    loaded = _run(data, ["-c", LOAD])
    assert loaded.returncode == 1
    assert loaded.stderr.strip().splitlines()[-1] == (
        "pipelines.paths.PlatformEnvironmentError: GTG_ENV is not set: set GTG_ENV=production for a deployment, "
        "or GTG_ENV=sandbox for the local sandbox (what `make run` does)")
    cli = _run(data, ["-m", "cli", "run", "--events", "100"])
    assert (cli.returncode, cli.stdout) == (2, "")
    assert cli.stderr.startswith("refused: GTG_ENV is not set")
    typo = _run(data, ["-m", "cli", "run"], GTG_ENV="prod")
    assert typo.returncode == 2 and "GTG_ENV is not one of the known values" in typo.stderr
    assert _sandbox_made(tmp_path) == []


def test_production_names_each_missing_secret_when_the_definitions_load(tmp_path: Path) -> None:
    data = tmp_path / "data"
    no_oauth = _run(data, ["-c", LOAD], GTG_ENV="production", GTG_MASTER_KEY=generate_master_key_text())
    assert no_oauth.returncode == 1
    assert no_oauth.stderr.strip().splitlines()[-1] == (
        "pipelines.mail_common.endpoints.MissingSecretError: GTG_ENV=production but GTG_GOOGLE_CLIENT_ID, "
        "GTG_GOOGLE_CLIENT_SECRET, GTG_MICROSOFT_CLIENT_ID, GTG_MICROSOFT_CLIENT_SECRET not set: the mail "
        "sources need the OAuth apps' ids and secrets")
    oauth = dict.fromkeys(OAUTH_ENV.values(), "configured")
    one_missing = _run(data, ["-c", LOAD], GTG_ENV="production", GTG_MASTER_KEY=generate_master_key_text(),
                       **{**oauth, "GTG_MICROSOFT_CLIENT_SECRET": ""})
    assert one_missing.returncode == 1 and "but GTG_MICROSOFT_CLIENT_SECRET not set" in one_missing.stderr
    no_ads = _run(data, ["-c", LOAD], GTG_ENV="production", GTG_MASTER_KEY=generate_master_key_text(), **oauth)
    assert no_ads.returncode == 1
    assert no_ads.stderr.strip().splitlines()[-1] == (
        "pipelines.google_ads.connect.MissingGoogleAdsApp: GTG_ENV=production but GTG_GOOGLE_ADS_DEVELOPER_TOKEN, "
        "GTG_GOOGLE_ADS_CLIENT_ID, GTG_GOOGLE_ADS_CLIENT_SECRET not set: the Google Ads source needs the platform's "
        "developer token and OAuth client")
    oauth |= dict.fromkeys(GOOGLE_ADS_ENV.values(), "configured")
    no_key = _run(data, ["-c", LOAD], GTG_ENV="production", **oauth)
    assert no_key.returncode == 1
    assert no_key.stderr.strip().splitlines()[-1].startswith(
        "pipelines.privacy.keyring.KeyringError: No master key: GTG_MASTER_KEY is not set and the key file")
    assert _sandbox_made(tmp_path) == []  # in particular no generated master key

    no_app = _run(data, ["-c", LOAD], GTG_ENV="production", GTG_MASTER_KEY=generate_master_key_text(), **oauth)
    assert no_app.returncode == 1
    assert no_app.stderr.strip().splitlines()[-1] == (
        "pipelines.mail_common.endpoints.MissingSecretError: GTG_ENV=production but GTG_CRM_APP_DATABASE_URL not "
        "set: the CRM app source needs the app database's URL")
    ready = _run(data, ["-c", LOAD], GTG_ENV="production", GTG_MASTER_KEY=generate_master_key_text(), **oauth,
                 GTG_CRM_APP_DATABASE_URL=_app_database(tmp_path))
    assert ready.returncode == 0, ready.stderr[-2000:]
    assert ready.stdout.strip() == ("['connections', 'crm_app', 'dlt_runner', 'facebook_ads', 'google_ads', "
                                    "'keyring', 'landing', 'linkedin_ads', 'mail', 'privacy', 'uploads', 'warehouse']")


def test_a_production_run_generates_no_events_and_no_key(tmp_path: Path) -> None:
    data = tmp_path / "data"
    oauth = dict.fromkeys([*OAUTH_ENV.values(), *GOOGLE_ADS_ENV.values()], "configured")
    run = _run(data, ["-m", "cli", "run", "--events", "100"], GTG_ENV="production",
               GTG_MASTER_KEY=generate_master_key_text(), GTG_CRM_APP_DATABASE_URL=_app_database(tmp_path), **oauth)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.splitlines()[:2] == ["GTG_ENV=production: sandbox events are never generated",
                                           "usage_events_job: nothing new landed (every landed file is loaded)"]
    assert _sandbox_made(tmp_path) == []
