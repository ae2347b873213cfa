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


# The OAuth apps' settings by field of OAuthApps, and the environment variable each comes from.
OAUTH_ENV = {
    "google_client_id": "GTG_GOOGLE_CLIENT_ID", "google_client_secret": "GTG_GOOGLE_CLIENT_SECRET",
    "microsoft_client_id": "GTG_MICROSOFT_CLIENT_ID", "microsoft_client_secret": "GTG_MICROSOFT_CLIENT_SECRET",
}


class MissingSecretError(RuntimeError):
    """Production without one of its secrets: the message names the variable, never a value."""


def require_oauth_env() -> None:
    """In production every OAuth variable must be set (the sandbox servers never stand in for a missing one)."""
    missing = [name for name in OAUTH_ENV.values() if not os.environ.get(name, "").strip()]
    if missing:
        raise MissingSecretError(f"GTG_ENV=production but {', '.join(missing)} not set: the mail sources need "
                                 "the OAuth apps' ids and secrets")


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
        return cls(*(os.environ.get(name) for name in OAUTH_ENV.values()),
                   os.environ.get("GTG_MICROSOFT_TENANT") or "common")
