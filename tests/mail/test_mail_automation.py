"""The connections sensor and the mail schedules, ticked for real: partitions follow the registry, new
connections get their first sync, revoked ones and those needing re-authorisation leave, and the hourly
schedule asks for every active connection."""

from __future__ import annotations

import datetime as dt

from dagster import DagsterInstance, build_schedule_context, build_sensor_context

from assets.connections import connections_sensor
from assets.mail import GMAIL_CONNECTIONS, MAIL_PROVIDERS, MAIL_SCHEDULES, OUTLOOK_CONNECTIONS
from resources.connections import ConnectionsResource
from resources.keyring import KeyringResource
from tests.mail.conftest import GMAIL, GMAIL_2, OUTLOOK


def _tick(instance, resources):
    result = connections_sensor(MAIL_PROVIDERS)(build_sensor_context(instance=instance, resources=resources))
    for request in result.dynamic_partitions_requests:  # what the daemon does with them
        if type(request).__name__ == "AddDynamicPartitionsRequest":
            instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
        else:
            for key in request.partition_keys:
                instance.delete_dynamic_partition(request.partitions_def_name, key)
    return result


def test_partitions_follow_the_registry_and_schedules_cover_active_connections(mail, tmp_path) -> None:
    instance = DagsterInstance.local_temp(str(tmp_path))  # a schedule context needs an instance on disk
    resources = {
        "connections": ConnectionsResource(connections_path=str(mail.root / "connections" / "connections.sqlite")),
        # sandbox=False: no seeding
        "keyring": KeyringResource(master_key_file=str(mail.root / "keys" / "master.key"),
                                   keyring_path=str(mail.root / "keys" / "keyring.sqlite")),
    }
    first = _tick(instance, resources)
    assert sorted((r.job_name, r.partition_key, r.run_key) for r in first.run_requests) == [
        ("gmail_sync_job", GMAIL, f"first-sync:{GMAIL}"), ("gmail_sync_job", GMAIL_2, f"first-sync:{GMAIL_2}"),
        ("outlook_sync_job", OUTLOOK, f"first-sync:{OUTLOOK}")]
    assert sorted(instance.get_dynamic_partitions(GMAIL_CONNECTIONS.name)) == [GMAIL, GMAIL_2]
    assert instance.get_dynamic_partitions(OUTLOOK_CONNECTIONS.name) == [OUTLOOK]
    assert _tick(instance, resources).run_requests == []  # nothing new: nothing asked

    mail.registry.revoke(GMAIL_2)
    assert _tick(instance, resources).run_requests == []
    assert instance.get_dynamic_partitions(GMAIL_CONNECTIONS.name) == [GMAIL]

    gmail_hourly = next(s for s in MAIL_SCHEDULES if s.name == "gmail_hourly_sync")
    context = build_schedule_context(instance=instance, resources=resources,
                                     scheduled_execution_time=dt.datetime(2026, 11, 26, 5, tzinfo=dt.timezone.utc))
    requests = gmail_hourly(context)
    assert [(r.partition_key, r.run_key) for r in requests] == [(GMAIL, f"{GMAIL}:2026-11-26 05:00:00+00:00")]

    # A refused token: the partition stays (its failed run tells why) but no schedule runs it until the user
    # reconnects; then the next hour's schedule does.
    outlook_hourly = next(s for s in MAIL_SCHEDULES if s.name == "outlook_hourly_sync")
    mail.registry.mark_needs_reauth(OUTLOOK, "Microsoft error invalid_grant")
    assert _tick(instance, resources).run_requests == []
    assert instance.get_dynamic_partitions(OUTLOOK_CONNECTIONS.name) == [OUTLOOK]
    assert outlook_hourly(context) == []
    with KeyringResource(master_key_file=str(mail.root / "keys" / "master.key"),
                         keyring_path=str(mail.root / "keys" / "keyring.sqlite")).open() as cipher:
        reconnected = mail.registry.reauthorise(cipher, OUTLOOK, refresh_token="new-refresh", access_token="new")
        assert mail.registry.tokens(cipher, reconnected).refresh_token == "new-refresh"
    assert (reconnected.status, reconnected.status_detail) == ("active", None)
    assert [r.partition_key for r in outlook_hourly(context)] == [OUTLOOK]


def test_production_switches_the_platform_to_the_real_apis(tmp_path) -> None:
    """GTG_ENV=production with the OAuth apps' secrets (through EnvVar in definitions.py) and a master key:
    the resource stops seeding sandbox connections and starting sandbox servers, and hands the sources the
    real hosts. (Calling them needs the internet, which this machine does not have.)"""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    code = ("import json; from definitions import defs; "
            "mail = defs.resources['mail']; r = mail.process_config_and_initialize(); "
            "ep = r.endpoints().__enter__(); "
            "print(json.dumps({'sandbox': r.sandbox, 'graph': ep.graph, 'batch': ep.google_batch, "
            "'google_api': ep.google_api}))")
    from pipelines.privacy.keyring import generate_master_key_text

    env = {**os.environ, "GTG_DATA_DIR": str(tmp_path), "GTG_ENV": "production",
           "GTG_MASTER_KEY": generate_master_key_text(), "GTG_GOOGLE_CLIENT_ID": "id.apps.googleusercontent.com",
           "GTG_GOOGLE_CLIENT_SECRET": "secret", "GTG_MICROSOFT_CLIENT_ID": "00000000-0000-0000-0000-000000000000",
           "GTG_MICROSOFT_CLIENT_SECRET": "secret"}
    real = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[2], env=env,
                          capture_output=True, text=True, timeout=120)
    assert real.returncode == 0, real.stderr[-2000:]
    assert json.loads(real.stdout.strip().splitlines()[-1]) == {
        "sandbox": False, "graph": "https://graph.microsoft.com/v1.0",
        "batch": "https://gmail.googleapis.com/batch/gmail/v1", "google_api": None}
