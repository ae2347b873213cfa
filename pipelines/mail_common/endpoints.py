"""Where the provider APIs are, and the OAuth apps that refresh tokens: the only difference between the
sandbox and the real APIs (PROVIDERS.md lists the redirects)."""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Endpoints:
    """Base URLs. `google_api` None means Google's own hosts (the discovery documents' root URLs)."""

    google_api: str | None = None
    google_batch: str = "https://gmail.googleapis.com/batch/gmail/v1"
    graph: str = "https://graph.microsoft.com/v1.0"


REAL_ENDPOINTS = Endpoints()


@dataclass(frozen=True)
class OAuthApps:
    """The platform's OAuth client registrations, used to refresh access tokens of real connections."""

    google_client_id: str | None = None
    google_client_secret: str | None = None
    microsoft_client_id: str | None = None
    microsoft_client_secret: str | None = None
    microsoft_tenant: str = "common"

    @classmethod
    def from_env(cls) -> OAuthApps:
        """GTG_GOOGLE_CLIENT_ID / _SECRET, GTG_MICROSOFT_CLIENT_ID / _SECRET / GTG_MICROSOFT_TENANT."""
        return cls(os.environ.get("GTG_GOOGLE_CLIENT_ID"), os.environ.get("GTG_GOOGLE_CLIENT_SECRET"),
                   os.environ.get("GTG_MICROSOFT_CLIENT_ID"), os.environ.get("GTG_MICROSOFT_CLIENT_SECRET"),
                   os.environ.get("GTG_MICROSOFT_TENANT") or "common")

    @property
    def configured(self) -> bool:
        """Whether any real provider is set up (otherwise the platform runs on the sandbox)."""
        return bool(self.google_client_id or self.microsoft_client_id)
