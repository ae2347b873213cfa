"""msgraph-sdk set up for one connection: the SDK's request builders and adapter, raw JSON pages.

The SDK stays the client (its request builders make the delta URLs, its adapter authenticates and sends),
but pages are read as bytes and parsed with `json`: msgraph-sdk's model parsing costs about 2.5 ms per
message, more than the rest of the sync together. Retries follow the shared policy (`mail_common.retry`)
instead of the SDK's RetryHandler, so one rule covers throttling, 5xx and cut connections alike and every
retry is counted; every HTTP request is counted by the innermost transport.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
from kiota_abstractions.api_error import APIError
from kiota_abstractions.authentication import (
    AccessTokenProvider, AllowedHostsValidator, BaseBearerTokenAuthenticationProvider,
)
from kiota_abstractions.base_request_configuration import RequestConfiguration
from kiota_http.kiota_client_factory import KiotaClientFactory
from kiota_http.middleware import RetryHandler
from msgraph import GraphRequestAdapter, GraphServiceClient
from msgraph.graph_request_adapter import options as GRAPH_OPTIONS  # the SDK's own (/me URL replacement)

from pipelines.connections.report import SyncReport
from pipelines.mail_common.retry import Retrier
from pipelines.mail_common.session import SyncSession
from pipelines.outlook.settings import HTTP_TIMEOUT_S, MICROSOFT_TOKEN_URL, PAGE_SIZE, SCOPES


def status_of(exc: BaseException) -> tuple[int | None, float | None]:
    """kiota's APIError (ODataError included): its status and Retry-After seconds."""
    if isinstance(exc, APIError):
        headers = exc.response_headers or {}
        retry_after = headers.get("retry-after") or headers.get("Retry-After")
        if isinstance(retry_after, list):
            retry_after = retry_after[0] if retry_after else None
        return exc.response_status_code, float(retry_after) if retry_after and str(retry_after).isdigit() else None
    return None, None


class CountingTransport(httpx.AsyncHTTPTransport):
    """The wire: counts every HTTP request actually sent."""

    def __init__(self, report: SyncReport) -> None:
        super().__init__()
        self.report = report

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.report.http_requests += 1
        return await super().handle_async_request(request)


class ConnectionTokenProvider(AccessTokenProvider):
    """The connection's access token; for a real connection, refreshed once from its refresh token."""

    def __init__(self, session: SyncSession, allowed_hosts: list[str]) -> None:
        self.session = session
        self.allowed_hosts = allowed_hosts
        self.token = session.tokens.access_token

    async def get_authorization_token(self, uri: str,
                                      additional_authentication_context: dict[str, Any] | None = None) -> str:
        if self.token is None or (not self.session.connection.sandbox and self.session.refreshed_access_token is None):
            self.token = await self._refresh()
            self.session.refreshed_access_token = self.token
        return self.token or ""

    async def _refresh(self) -> str:
        apps, tokens = self.session.oauth, self.session.tokens
        async with httpx.AsyncClient(timeout=HTTP_TIMEOUT_S) as client:
            response = await client.post(MICROSOFT_TOKEN_URL.format(tenant=apps.microsoft_tenant), data={
                "client_id": apps.microsoft_client_id, "client_secret": apps.microsoft_client_secret,
                "grant_type": "refresh_token", "refresh_token": tokens.refresh_token, "scope": SCOPES})
        response.raise_for_status()
        return response.json()["access_token"]

    def get_allowed_hosts_validator(self) -> AllowedHostsValidator:
        return AllowedHostsValidator(self.allowed_hosts)


class GraphPages:
    """Delta pages of one connection as parsed JSON, through the SDK's builders and adapter."""

    def __init__(self, session: SyncSession) -> None:
        self.session = session
        self.retrier = Retrier(session.report, status_of)
        self.loop = asyncio.new_event_loop()
        base = session.endpoints.graph
        host = httpx.URL(base).host
        http = httpx.AsyncClient(transport=CountingTransport(session.report), timeout=HTTP_TIMEOUT_S)
        middleware = [m for m in KiotaClientFactory.get_default_middleware(GRAPH_OPTIONS) if not isinstance(m, RetryHandler)]
        http = KiotaClientFactory.create_with_custom_middleware(middleware, client=http)
        auth = BaseBearerTokenAuthenticationProvider(ConnectionTokenProvider(session, [host]))
        self.adapter = GraphRequestAdapter(auth, client=http)
        self.adapter.base_url = base
        self.client = GraphServiceClient(request_adapter=self.adapter)
        self.origin = str(httpx.URL(base).copy_with(path="/", query=None)).rstrip("/")

    def folder_delta(self, folder: str) -> Any:
        return self.client.me.mail_folders.by_mail_folder_id(folder).messages.delta

    def contacts_delta(self) -> Any:
        return self.client.me.contacts.delta

    def page(self, builder: Any, link: str | None) -> dict[str, Any]:
        """One page: the builder's first request, or a next/delta link (stored relative to the API origin)."""
        config = RequestConfiguration()
        config.headers.add("Prefer", f"odata.maxpagesize={PAGE_SIZE}")
        target = builder.with_url(self.absolute(link)) if link else builder
        info = target.to_get_request_information(config)
        raw = self.retrier.call(lambda: self.loop.run_until_complete(
            self.adapter.send_primitive_async(info, "bytes", None)))
        return json.loads(raw)

    def relative(self, link: str) -> str:
        """A link without its origin: the sandbox's port changes between processes, Graph's host does not."""
        url = httpx.URL(link)
        return url.raw_path.decode()

    def absolute(self, link: str) -> str:
        return link if link.startswith("http") else self.origin + link

    def close(self) -> None:
        self.loop.run_until_complete(self.adapter._http_client.aclose())
        self.loop.close()
