"""The official SDK clients pointed at the mail sandboxes, exactly as the platform's sources will point them."""

from __future__ import annotations

from typing import Any

from google.oauth2.credentials import Credentials
from googleapiclient.discovery import build
from kiota_abstractions.authentication import (
    AccessTokenProvider, AllowedHostsValidator, BaseBearerTokenAuthenticationProvider,
)
from msgraph import GraphRequestAdapter, GraphServiceClient

from pipelines.sandbox.mail import Account, GoogleServer, GraphServer


class StaticTokenProvider(AccessTokenProvider):
    """A fixed bearer token: no call to the Microsoft login host."""

    def __init__(self, token: str) -> None:
        self.token = token

    async def get_authorization_token(self, uri: str,
                                      additional_authentication_context: dict[str, Any] | None = None) -> str:
        return self.token

    def get_allowed_hosts_validator(self) -> AllowedHostsValidator:
        return AllowedHostsValidator(["127.0.0.1"])


def google_service(server: GoogleServer, account: Account, api: str = "gmail") -> Any:
    """`build("gmail"|"people", "v1", ...)` from the discovery document shipped with the SDK, redirected."""
    return build(api, "v1", credentials=Credentials(token=account.token), static_discovery=True,
                 client_options={"api_endpoint": server.url})


def graph_client(server: GraphServer, account: Account) -> GraphServiceClient:
    adapter = GraphRequestAdapter(BaseBearerTokenAuthenticationProvider(StaticTokenProvider(account.token)))
    adapter.base_url = f"{server.url}/v1.0"
    return GraphServiceClient(request_adapter=adapter)
