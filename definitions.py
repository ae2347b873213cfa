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

from assets.ad_reporting import AD_REPORTING_CHECKS
from assets.analytics import ANALYTICS_ASSETS, analytics_job, analytics_schedule
from assets.connections import ConnectedProvider, connections_sensor
from assets.contact_uploads import UPLOAD_ASSETS, UPLOAD_CHECKS, UploadsResource, contact_uploads_sensor, uploads_job
from assets.crm_app import CRM_APP_ASSETS, CRM_APP_CHECKS, crm_app_job, crm_app_schedule
from assets.facebook_ads import FACEBOOK_ASSETS, FACEBOOK_CHECKS, FACEBOOK_PROVIDER, FACEBOOK_SCHEDULES, facebook_job
from assets.google_ads import (
    GOOGLE_ADS_CHECKS,
    GOOGLE_ADS_PROVIDER,
    GOOGLE_ADS_SCHEDULES,
    google_ads_assets,
    google_ads_job,
)
from assets.catalog_specs import describe
from assets.ingestion import EVENT_CHECKS, usage_events_assets, usage_events_job, usage_events_landing_sensor
from assets.linkedin_ads import (
    LINKEDIN_ADS_CHECKS,
    LINKEDIN_ADS_PROVIDER,
    LINKEDIN_ADS_SCHEDULES,
    linkedin_ads_assets,
    linkedin_ads_job,
)
from assets.mail import MAIL_ASSETS, MAIL_CHECKS, MAIL_JOBS, MAIL_PROVIDERS, MAIL_SCHEDULES
from assets.privacy import (
    PRIVACY_ASSETS,
    PRIVACY_CHECKS,
    data_subject_request_sensor,
    requests_job,
    retention_job,
    retention_schedule,
)
from assets.policy_evidence import EVIDENCE_CHECKS, evidence_job, evidence_schedule, policy_evidence
from assets.runs import abandoned_runs_sensor
from pipelines import paths
from pipelines.crm_app.settings import ALLOW_REMOVALS_ENV, DATABASE_URL_ENV
from pipelines.facebook.settings import APP_ENV as FACEBOOK_APP_ENV
from pipelines.google_ads.connect import APP_ENV as GOOGLE_ADS_ENV
from pipelines.google_ads.connect import require_app_env as require_google_ads_env
from pipelines.mail_common.endpoints import OAUTH_ENV, MissingSecretError, require_oauth_env
from pipelines.privacy.keyring import platform_master_key
from resources.connections import ConnectionsResource
from resources.crm_app import CrmAppResource
from resources.facebook import FacebookResource
from resources.google_ads import GoogleAdsResource
from resources.keyring import KeyringResource
from resources.landing import LandingResource
from resources.linkedin_ads import LinkedInAdsResource
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


def _crm_app(sandbox: bool) -> CrmAppResource:
    """The generated sandbox database unless GTG_CRM_APP_DATABASE_URL is set (required in production); the URL,
    which holds the database password, arrives through EnvVar, and so do the tables whose mass removal an
    operator allows (GTG_CRM_APP_ALLOW_REMOVALS)."""
    allowed = {"allow_removals": EnvVar(ALLOW_REMOVALS_ENV)} if os.environ.get(ALLOW_REMOVALS_ENV) else {}
    if os.environ.get(DATABASE_URL_ENV):
        return CrmAppResource(database_url=EnvVar(DATABASE_URL_ENV), sandbox=sandbox, **allowed)
    if not sandbox:
        raise MissingSecretError(f"GTG_ENV=production but {DATABASE_URL_ENV} not set: the CRM app source needs "
                                 "the app database's URL")
    return CrmAppResource(sandbox=True, **allowed)


def _google_ads(sandbox: bool) -> GoogleAdsResource:
    """The sandbox's gRPC server, or Google with the developer token and OAuth client through EnvVar."""
    if sandbox:
        return GoogleAdsResource(sandbox=True)
    require_google_ads_env()
    return GoogleAdsResource(sandbox=False, **{field: EnvVar(name) for field, name in GOOGLE_ADS_ENV.items()})


def _facebook(sandbox: bool) -> FacebookResource:
    """The sandbox's Graph API server, or the real one; the Meta app's id and secret (optional: they sign each
    request with appsecret_proof) through EnvVar when set."""
    if sandbox:
        return FacebookResource(sandbox=True)
    return FacebookResource(sandbox=False, **{field: EnvVar(name) for field, name in FACEBOOK_APP_ENV.items()
                                              if os.environ.get(name)})


SANDBOX = paths.is_sandbox()
# Every provider whose accounts a workspace connects: the connections sensor and `cli run` walk this list.
CONNECTED_PROVIDERS: list[ConnectedProvider] = [*MAIL_PROVIDERS, FACEBOOK_PROVIDER, GOOGLE_ADS_PROVIDER,
                                                LINKEDIN_ADS_PROVIDER]
paths.private_dir(paths.data_dir())
if not SANDBOX:
    platform_master_key()  # fails now, naming GTG_MASTER_KEY, rather than in the first run

defs = Definitions(
    # describe: owners, `pii` tags and column schemas from the catalogue's declarations (assets/catalog_specs.py)
    assets=describe([usage_events_assets, *MAIL_ASSETS, *FACEBOOK_ASSETS, google_ads_assets, linkedin_ads_assets,
                     *CRM_APP_ASSETS, *UPLOAD_ASSETS, *PRIVACY_ASSETS, *ANALYTICS_ASSETS, policy_evidence]),
    asset_checks=[*EVENT_CHECKS, *MAIL_CHECKS, *FACEBOOK_CHECKS, *GOOGLE_ADS_CHECKS, *LINKEDIN_ADS_CHECKS,
                  *CRM_APP_CHECKS, *UPLOAD_CHECKS, *PRIVACY_CHECKS, *AD_REPORTING_CHECKS, *EVIDENCE_CHECKS],
    jobs=[usage_events_job, *MAIL_JOBS, facebook_job, google_ads_job, linkedin_ads_job, crm_app_job, uploads_job,
          retention_job, requests_job, analytics_job, evidence_job],
    schedules=[retention_schedule, analytics_schedule, evidence_schedule, *MAIL_SCHEDULES, *FACEBOOK_SCHEDULES,
               *GOOGLE_ADS_SCHEDULES, *LINKEDIN_ADS_SCHEDULES, crm_app_schedule],
    sensors=[usage_events_landing_sensor, connections_sensor(CONNECTED_PROVIDERS), contact_uploads_sensor,
             data_subject_request_sensor, abandoned_runs_sensor],
    executor=_executor(),
    resources={
        "dlt_runner": DagsterDltResource(),
        "warehouse": WarehouseResource(),
        "keyring": KeyringResource(),
        "landing": LandingResource(),
        "privacy": PrivacyResource(),
        "connections": ConnectionsResource(sandbox=SANDBOX),
        "mail": _mail(SANDBOX),
        "google_ads": _google_ads(SANDBOX),
        "crm_app": _crm_app(SANDBOX),
        "uploads": UploadsResource(),
        "facebook_ads": _facebook(SANDBOX),
        "linkedin_ads": LinkedInAdsResource(sandbox=SANDBOX),
    },
)
