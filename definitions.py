"""The one Dagster Definitions entry point, loaded by workspace.yaml and `dagster dev`.

Resources read secrets through EnvVar only when they are set; otherwise the embedded sandbox defaults apply
(local data folder, generated master key), so a fresh clone shows a working platform.
"""

from __future__ import annotations

import os

from dagster import Definitions, EnvVar, in_process_executor
from dagster_dlt import DagsterDltResource

from assets.analytics import ANALYTICS_ASSETS, analytics_job, analytics_schedule
from assets.ingestion import EVENT_CHECKS, usage_events_assets, usage_events_job, usage_events_landing_sensor
from assets.mail import MAIL_ASSETS, MAIL_CHECKS, MAIL_JOBS, MAIL_SCHEDULES, MAIL_SENSORS
from assets.privacy import (
    PRIVACY_ASSETS,
    PRIVACY_CHECKS,
    data_subject_request_sensor,
    requests_job,
    retention_job,
    retention_schedule,
)
from assets.runs import abandoned_runs_sensor
from resources.keyring import KeyringResource
from resources.landing import LandingResource
from resources.mail import MailResource
from resources.privacy import PrivacyResource
from resources.warehouse import WarehouseResource


def _keyring() -> KeyringResource:
    if os.environ.get("GTG_MASTER_KEY"):
        return KeyringResource(master_key=EnvVar("GTG_MASTER_KEY"))
    return KeyringResource()


# OAuth apps of the real providers: each secret through EnvVar, only when set (none set: the sandbox).
_MAIL_SECRETS = {
    "google_client_id": "GTG_GOOGLE_CLIENT_ID", "google_client_secret": "GTG_GOOGLE_CLIENT_SECRET",
    "microsoft_client_id": "GTG_MICROSOFT_CLIENT_ID", "microsoft_client_secret": "GTG_MICROSOFT_CLIENT_SECRET",
}


def _mail() -> MailResource:
    secrets = {field: EnvVar(name) for field, name in _MAIL_SECRETS.items() if os.environ.get(name)}
    return MailResource(**secrets, microsoft_tenant=os.environ.get("GTG_MICROSOFT_TENANT") or "common")


defs = Definitions(
    assets=[usage_events_assets, *MAIL_ASSETS, *PRIVACY_ASSETS, *ANALYTICS_ASSETS],
    asset_checks=[*EVENT_CHECKS, *MAIL_CHECKS, *PRIVACY_CHECKS],
    jobs=[usage_events_job, *MAIL_JOBS, retention_job, requests_job, analytics_job],
    schedules=[retention_schedule, analytics_schedule, *MAIL_SCHEDULES],
    sensors=[usage_events_landing_sensor, *MAIL_SENSORS, data_subject_request_sensor, abandoned_runs_sensor],
    # A run's steps run one after another in its own process, which holds the warehouse for the whole run.
    executor=in_process_executor,
    resources={
        "dlt_runner": DagsterDltResource(),
        "warehouse": WarehouseResource(),
        "keyring": _keyring(),
        "landing": LandingResource(),
        "privacy": PrivacyResource(),
        "mail": _mail(),
    },
)
