"""The one Dagster Definitions entry point, loaded by workspace.yaml and `dagster dev`.

GTG_ENV decides between the sandbox and production (`pipelines.paths.environment`; it has no default). In the
sandbox the embedded defaults apply (local data folder, generated master key, local fake mail servers), so a
fresh clone shows a working platform. In production every secret is required here, when the definitions
load: a missing one stops `dagster dev` / the code server with the variable's name, before any run starts.
"""

from __future__ import annotations

import os

from dagster import Definitions, EnvVar, ExecutorDefinition, in_process_executor
from dagster_celery import celery_executor
from dagster_dlt import DagsterDltResource

from assets.analytics import ANALYTICS_ASSETS, analytics_job, analytics_schedule
from assets.ingestion import EVENT_CHECKS, usage_events_assets, usage_events_job, usage_events_landing_sensor
from assets.connections import ConnectedProvider, connections_sensor
from assets.mail import MAIL_ASSETS, MAIL_CHECKS, MAIL_JOBS, MAIL_PROVIDERS, MAIL_SCHEDULES
from assets.privacy import (
    PRIVACY_ASSETS,
    PRIVACY_CHECKS,
    data_subject_request_sensor,
    requests_job,
    retention_job,
    retention_schedule,
)
from assets.runs import abandoned_runs_sensor
from pipelines import paths
from pipelines.mail_common.endpoints import OAUTH_ENV, require_oauth_env
from pipelines.privacy.keyring import platform_master_key
from resources.connections import ConnectionsResource
from resources.keyring import KeyringResource
from resources.landing import LandingResource
from resources.mail import MailResource
from resources.privacy import PrivacyResource
from resources.warehouse import WarehouseResource

def _executor() -> ExecutorDefinition:
    """In process by default: a run's steps run one after another in its own process, which holds the warehouse
    for the whole run. GTG_EXECUTOR=celery spreads a run's steps over Celery workers instead (dagster-celery; the
    broker and result backend at GTG_CELERY_BROKER, e.g. redis://host:6379/0): each step then holds the
    warehouse while it runs, so writers still take turns, and parallel runs (a backfill's days) share the
    workers. Workers are started with the same environment: `celery -A dagster_celery.app worker -Q dagster`."""
    chosen = os.environ.get("GTG_EXECUTOR") or "in_process"
    if chosen == "in_process":
        return in_process_executor
    if chosen != "celery":
        raise ValueError(f"GTG_EXECUTOR={chosen!r}: choose in_process or celery")
    broker = os.environ["GTG_CELERY_BROKER"]
    return celery_executor.configured({"broker": broker, "backend": broker}, name="celery")


def _mail(sandbox: bool) -> MailResource:
    """The sandbox's fake servers, or the real APIs with each OAuth secret through EnvVar (its value never
    enters Dagster's storage)."""
    tenant = os.environ.get("GTG_MICROSOFT_TENANT") or "common"
    if sandbox:
        return MailResource(sandbox=True, microsoft_tenant=tenant)
    require_oauth_env()
    return MailResource(sandbox=False, microsoft_tenant=tenant,
                        **{field: EnvVar(name) for field, name in OAUTH_ENV.items()})


SANDBOX = paths.is_sandbox()
# Every provider whose accounts a workspace connects: the connections sensor and `cli run` walk this list.
CONNECTED_PROVIDERS: list[ConnectedProvider] = [*MAIL_PROVIDERS]
paths.private_dir(paths.data_dir())
if not SANDBOX:
    platform_master_key()  # fails now, naming GTG_MASTER_KEY, rather than in the first run

defs = Definitions(
    assets=[usage_events_assets, *MAIL_ASSETS, *PRIVACY_ASSETS, *ANALYTICS_ASSETS],
    asset_checks=[*EVENT_CHECKS, *MAIL_CHECKS, *PRIVACY_CHECKS],
    jobs=[usage_events_job, *MAIL_JOBS, retention_job, requests_job, analytics_job],
    schedules=[retention_schedule, analytics_schedule, *MAIL_SCHEDULES],
    sensors=[usage_events_landing_sensor, connections_sensor(CONNECTED_PROVIDERS), data_subject_request_sensor,
             abandoned_runs_sensor],
    executor=_executor(),
    resources={
        "dlt_runner": DagsterDltResource(),
        "warehouse": WarehouseResource(),
        "keyring": KeyringResource(),
        "landing": LandingResource(),
        "privacy": PrivacyResource(),
        "connections": ConnectionsResource(sandbox=SANDBOX),
        "mail": _mail(SANDBOX),
    },
)
