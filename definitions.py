"""The one Dagster Definitions entry point, loaded by workspace.yaml and `dagster dev`.

Resources read secrets through EnvVar only when they are set; otherwise the embedded sandbox defaults apply
(local data folder, generated master key), so a fresh clone shows a working platform.
"""

from __future__ import annotations

import os

from dagster import Definitions, EnvVar
from dagster_dlt import DagsterDltResource

from assets.analytics import ANALYTICS_ASSETS, analytics_job, analytics_schedule
from assets.ingestion import EVENT_CHECKS, usage_events_assets, usage_events_job, usage_events_landing_sensor
from assets.privacy import (
    PRIVACY_ASSETS,
    PRIVACY_CHECKS,
    data_subject_request_sensor,
    requests_job,
    retention_job,
    retention_schedule,
)
from resources.keyring import KeyringResource
from resources.landing import LandingResource
from resources.privacy import PrivacyResource
from resources.warehouse import WarehouseResource


def _keyring() -> KeyringResource:
    if os.environ.get("GTG_MASTER_KEY"):
        return KeyringResource(master_key=EnvVar("GTG_MASTER_KEY"))
    return KeyringResource()


defs = Definitions(
    assets=[usage_events_assets, *PRIVACY_ASSETS, *ANALYTICS_ASSETS],
    asset_checks=[*EVENT_CHECKS, *PRIVACY_CHECKS],
    jobs=[usage_events_job, retention_job, requests_job, analytics_job],
    schedules=[retention_schedule, analytics_schedule],
    sensors=[usage_events_landing_sensor, data_subject_request_sensor],
    resources={
        "dlt_runner": DagsterDltResource(),
        "warehouse": WarehouseResource(),
        "keyring": _keyring(),
        "landing": LandingResource(),
        "privacy": PrivacyResource(),
    },
)
