"""The google-ads client of one connection, and the two ways the source reads with it: a report by SearchStream
(one request per query, however many rows) and an entity listing by Search pages. Both retry transient
failures through the shared `Retrier` and turn the API's errors into the few outcomes a sync acts on.

What an error means is read from the `GoogleAdsFailure` (the client puts it on GoogleAdsException, and leaves
it in the trailing metadata for INTERNAL and RESOURCE_EXHAUSTED, which it raises bare):
- AUTHENTICATION_ERROR OAUTH_TOKEN_EXPIRED -> `AccessTokenExpired`: the access token's hour is over; with a refresh
  token google-auth gets a new one from the OAuth token endpoint and the call is made again (once), without one
  it is a `ReauthorizationRequired`;
- any other AUTHENTICATION_ERROR, or a refresh the token endpoint refuses (`invalid_grant`: the user revoked
  access) -> `ReauthorizationRequired`: retrying cannot help (a wrong developer token is the platform's fault,
  not the user's: `GoogleAdsRequestFailed`);
- QUOTA_ERROR RESOURCE_EXHAUSTED -> `DailyQuotaExhausted`: the developer token's daily operations are used up,
  the sync stops cleanly and resumes from its cursors after the reset;
- QUOTA_ERROR RESOURCE_TEMPORARILY_EXHAUSTED (with its retry delay), INTERNAL, UNAVAILABLE, DEADLINE_EXCEEDED
  (the call timeout), a stream cut midway -> retried with back-off, the whole query again;
- REQUEST_ERROR EXPIRED_PAGE_TOKEN -> the listing restarts from its first page;
- anything else -> `GoogleAdsRequestFailed` naming the error codes (never a message or a value).
Errors are raised outside the `except` block that caught the client's, so their cause chain holds no gRPC
object (the connection's status names the outcome's class).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, TypeVar

import grpc
from google.ads.googleads.client import GoogleAdsClient
from google.ads.googleads.errors import GoogleAdsException
from google.ads.googleads.v26.errors.types.errors import GoogleAdsFailure
from google.ads.googleads.v26.services.types.google_ads_service import (
    SearchGoogleAdsResponse,
    SearchGoogleAdsStreamResponse,
)
from google.api_core import exceptions as api_exceptions
from google.auth import exceptions as auth_exceptions
from google.auth.transport.requests import Request as AuthRequest
from google.oauth2.credentials import Credentials

from pipelines.connections.errors import ReauthorizationRequired
from pipelines.connections.report import SyncReport
from pipelines.google_ads.settings import API_VERSION, CALL_TIMEOUT_S, PAGE_TOKEN_RESTARTS
from pipelines.connections.retry import Retrier, RetryPolicy

T = TypeVar("T")
GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"
_FAILURE_KEY = f"google.ads.googleads.{API_VERSION}.errors.googleadsfailure-bin"
# gRPC statuses worth another try, as the HTTP statuses the shared Retrier retries.
_TRANSIENT_STATUS = {grpc.StatusCode.INTERNAL: 500, grpc.StatusCode.UNAVAILABLE: 503,
                     grpc.StatusCode.DEADLINE_EXCEEDED: 504, grpc.StatusCode.ABORTED: 503}


class DailyQuotaExhausted(Exception):
    """The developer token's daily quota is used up: stop this connection's run, keep what is loaded."""


class PageTokenExpired(Exception):
    """A Search page token expired before the next page was read: the listing starts again."""


class AccessTokenExpired(ReauthorizationRequired):
    """The access token has expired: refreshed when the connection has a refresh token, else the user must
    connect again."""


class GoogleAdsRequestFailed(Exception):
    """The API refused a request for a reason retrying cannot fix; the message names the error codes only."""


class TransientAdsError(Exception):
    """A failure worth retrying; `status` is its HTTP equivalent for the shared Retrier."""

    def __init__(self, status: int, retry_after: float | None, what: str) -> None:
        super().__init__(what)
        self.status, self.retry_after = status, retry_after


@dataclass(frozen=True)
class AdsAccess:
    """What a connection needs to reach the API: the platform's developer token and OAuth client, the
    connection's tokens and login customer (a manager's id, or the account's own), and the endpoint
    (None: Google's; the sandbox's `127.0.0.1:PORT` otherwise)."""

    developer_token: str
    login_customer_id: str
    access_token: str | None = None
    refresh_token: str | None = None
    client_id: str | None = None
    client_secret: str | None = None
    endpoint: str | None = None
    token_uri: str = GOOGLE_TOKEN_URI  # Google's OAuth token endpoint (the sandbox's on 127.0.0.1 in tests)


def ads_client(access: AdsAccess) -> GoogleAdsClient:
    """The client, built directly (the SDK's load_from_* helpers refresh the token against Google eagerly)."""
    credentials = Credentials(token=access.access_token, refresh_token=access.refresh_token,
                              client_id=access.client_id, client_secret=access.client_secret,
                              token_uri=access.token_uri)
    return GoogleAdsClient(credentials=credentials, developer_token=access.developer_token,
                           endpoint=access.endpoint, login_customer_id=access.login_customer_id,
                           use_proto_plus=True, version=API_VERSION)


class AdsApi:
    """Queries of one connection, counted in the sync's report and retried under `policy`."""

    def __init__(self, client: GoogleAdsClient, report: SyncReport, *, policy: RetryPolicy = RetryPolicy(),
                 timeout: float = CALL_TIMEOUT_S) -> None:
        self.client = client
        self.service = client.get_service("GoogleAdsService")  # kept: the channel lives as long as the service
        self.report = report
        self.timeout = timeout
        self.retrier = Retrier(report, _status_of, policy)

    def stream(self, customer_id: str, query: str) -> list[Any]:
        """Every row of `query` (raw protobuf GoogleAdsRow), by one SearchStream; a failure anywhere in the stream
        repeats the whole query."""
        def once() -> list[Any]:
            self.report.http_requests += 1
            rows: list[Any] = []
            for batch in self.service.search_stream(customer_id=customer_id, query=query, timeout=self.timeout):
                rows.extend(SearchGoogleAdsStreamResponse.pb(batch).results)
            return rows
        return self._call(once)

    def search(self, customer_id: str, query: str, on_restart: Callable[[], None] | None = None) -> list[Any]:
        """Every row of `query` by Search pages; a transient failure retries the page, an expired page token
        restarts from the first page (PAGE_TOKEN_RESTARTS times at most)."""
        for _ in range(PAGE_TOKEN_RESTARTS + 1):
            rows: list[Any] = []
            token = ""
            try:
                while True:
                    page = self._call(lambda: self._page(customer_id, query, token))
                    rows.extend(page.results)
                    token = page.next_page_token
                    if not token:
                        return rows
            except PageTokenExpired:
                if on_restart is not None:
                    on_restart()
        raise GoogleAdsRequestFailed(f"Google Ads page token expired {PAGE_TOKEN_RESTARTS + 1} times in a row")

    def _call(self, call: Callable[[], T]) -> T:
        """`call` retried under the policy; an expired access token is refreshed once and the call made again."""
        credentials = self.client.credentials
        if not credentials.token and credentials.refresh_token:
            self._refresh()  # no access token yet: get one before the call, so a refused refresh is seen as such
        try:
            return self.retrier.call(lambda: _translated(call))
        except AccessTokenExpired:
            if not credentials.refresh_token:
                raise
        self._refresh()
        return self.retrier.call(lambda: _translated(call))

    def _refresh(self) -> None:
        """A new access token from the OAuth token endpoint (google-auth); `invalid_grant` -> re-authorisation."""
        self.report.http_requests += 1
        _translated(lambda: self.client.credentials.refresh(AuthRequest()))

    def _page(self, customer_id: str, query: str, token: str) -> Any:
        self.report.http_requests += 1
        pager = self.service.search(request={"customer_id": customer_id, "query": query, "page_token": token},
                                    timeout=self.timeout)
        return SearchGoogleAdsResponse.pb(next(iter(pager.pages)))

    def close(self) -> None:
        """Close the gRPC channel (a server that stops while it is open makes gRPC log a GOAWAY)."""
        self.service.transport.close()

    def refreshed_token(self) -> str | None:
        """The access token the credentials hold now (refreshed by google-auth when it had expired)."""
        return self.client.credentials.token


def _translated(call: Callable[[], T]) -> T:
    try:
        return call()
    except Exception as exc:  # noqa: BLE001 - classified; raised below, outside this block
        outcome = _outcome(exc)
        if outcome is exc:
            raise
    raise outcome


def _outcome(exc: Exception) -> Exception:
    """The exception the sync acts on, for an error of the client (an unknown one is returned unchanged)."""
    if isinstance(exc, auth_exceptions.RefreshError):
        answer = exc.args[1] if len(exc.args) > 1 and isinstance(exc.args[1], dict) else {}
        error = str(answer.get("error") or "unknown")
        if error == "invalid_grant":
            return ReauthorizationRequired("Google Ads OAuth token refresh refused (invalid_grant): the user must "
                                           "connect the account again")
        return GoogleAdsRequestFailed(f"Google Ads OAuth token refresh refused ({error}): the platform's OAuth "
                                      "client is wrong, not the user's")
    if not isinstance(exc, (GoogleAdsException, api_exceptions.GoogleAPICallError, grpc.RpcError)):
        return exc
    codes = _error_codes(exc)
    status = _status_code(exc)
    named = ", ".join(f"{kind.upper()} {name}" for kind, name in codes) or (status.name if status else "unknown")
    kinds = {kind for kind, _ in codes}
    if ("authentication_error", "DEVELOPER_TOKEN_INVALID") in codes:
        return GoogleAdsRequestFailed(f"Google Ads {named}: the platform's developer token is wrong, not the user's")
    if ("authentication_error", "OAUTH_TOKEN_EXPIRED") in codes:
        return AccessTokenExpired(f"Google Ads {named}: the user must connect the account again")
    if "authentication_error" in kinds or status is grpc.StatusCode.UNAUTHENTICATED:
        return ReauthorizationRequired(f"Google Ads {named}: the user must connect the account again")
    if ("quota_error", "RESOURCE_EXHAUSTED") in codes:
        return DailyQuotaExhausted(f"Google Ads {named}: the developer token's daily quota is used up; the "
                                   "connection resumes from its cursors after the reset")
    if ("request_error", "EXPIRED_PAGE_TOKEN") in codes:
        return PageTokenExpired(f"Google Ads {named}")
    if "quota_error" in kinds:
        return TransientAdsError(429, _retry_delay(exc), f"Google Ads {named}")
    if "internal_error" in kinds or status in _TRANSIENT_STATUS:
        return TransientAdsError(_TRANSIENT_STATUS.get(status, 500), None, f"Google Ads {named}")
    return GoogleAdsRequestFailed(f"Google Ads request failed: {named}")


def _status_of(exc: BaseException) -> tuple[int | None, float | None]:
    if isinstance(exc, TransientAdsError):
        return exc.status, exc.retry_after
    return None, None


def _call_of(exc: Exception) -> Any:
    """The gRPC call an error came from (it holds the status and the trailing metadata)."""
    if isinstance(exc, GoogleAdsException):
        return exc.error
    if isinstance(exc, api_exceptions.GoogleAPICallError):
        return exc.response
    return exc


def _status_code(exc: Exception) -> grpc.StatusCode | None:
    if isinstance(exc, api_exceptions.GoogleAPICallError) and exc.grpc_status_code is not None:
        return exc.grpc_status_code
    call = _call_of(exc)
    try:
        return call.code()
    except Exception:  # noqa: BLE001 - not a finished call
        return None


def _failure(exc: Exception) -> Any | None:
    """The GoogleAdsFailure (raw protobuf) of an error, if the API sent one."""
    if isinstance(exc, GoogleAdsException):
        return GoogleAdsFailure.pb(exc.failure)
    try:
        metadata = _call_of(exc).trailing_metadata() or ()
    except Exception:  # noqa: BLE001 - no call, or a call without metadata
        return None
    for key, value in metadata:
        if key == _FAILURE_KEY:
            return GoogleAdsFailure.pb().FromString(value)
    return None


def _error_codes(exc: Exception) -> list[tuple[str, str]]:
    """(ErrorCode field, enum name) of each error of the failure: ("quota_error", "RESOURCE_EXHAUSTED")."""
    failure = _failure(exc)
    codes = []
    for error in failure.errors if failure is not None else ():
        kind = error.error_code.WhichOneof("error_code")
        if kind:
            field = error.error_code.DESCRIPTOR.fields_by_name[kind]
            codes.append((kind, field.enum_type.values_by_number[getattr(error.error_code, kind)].name))
    return codes


def _retry_delay(exc: Exception) -> float | None:
    failure = _failure(exc)
    for error in failure.errors if failure is not None else ():
        if error.details.HasField("quota_error_details"):
            delay = error.details.quota_error_details.retry_delay
            return delay.seconds + delay.nanos / 1e9
    return None
