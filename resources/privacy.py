"""The privacy engine's files as a Dagster resource: request inbox, audit log, exports, landing zones."""

from __future__ import annotations

from dagster import ConfigurableResource
from pydantic import Field

from pipelines import paths
from pipelines.catalog import LANDING_ZONES
from pipelines.privacy.audit import AuditLog
from pipelines.privacy.requests import Inbox


def _landing_urls() -> dict[str, str]:
    return {zone.name: zone.url() for zone in LANDING_ZONES}


class PrivacyResource(ConfigurableResource):
    """Where requests arrive, where the audit log and exports are kept, and which landing zones erasure
    scrubs (by zone name, default: each source's landing location)."""

    inbox_path: str = str(paths.request_inbox_path())
    audit_path: str = str(paths.audit_log_path())
    exports_dir: str = str(paths.exports_dir())
    landing_urls: dict[str, str] = Field(default_factory=_landing_urls)

    def inbox(self) -> Inbox:
        return Inbox(self.inbox_path)

    def audit(self, keyring) -> AuditLog:
        """The audit log, its chain keyed by `keyring`'s audit key."""
        return AuditLog.of(self.audit_path, keyring)
