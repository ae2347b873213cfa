"""The Google Ads API v26 over gRPC on 127.0.0.1, for the real `google-ads` client unchanged.

Serves GoogleAdsService.Search (pages by page token), GoogleAdsService.SearchStream (batches of rows on one
stream) and CustomerService.ListAccessibleCustomers over TLS with the process's sandbox certificate
(`tls.py`). Every call is checked as Google checks it: an OAuth bearer token, a developer token, and for a
client account the manager's id in `login-customer-id`. Errors carry the `GoogleAdsFailure` in the
`google.ads.googleads.v26.errors.googleadsfailure-bin` trailing metadata with the status the API uses, so
the client raises what it raises against Google (GoogleAdsException, or a bare RpcError for INTERNAL and
RESOURCE_EXHAUSTED, whose failure the caller reads from the same metadata). Calls are counted by method and
customer, and logged with their query (`calls`, `log`), for tests and benchmarks.
"""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from collections import Counter
from concurrent import futures
from dataclasses import dataclass
from typing import Any, Iterator

import grpc
from google.ads.googleads.v26.errors.types.errors import GoogleAdsFailure
from google.ads.googleads.v26.services.types import customer_service, google_ads_service
from google.protobuf.descriptor import FieldDescriptor

from pipelines.sandbox.google_ads import gaql
from pipelines.sandbox.google_ads.faults import AdsFault, AdsFaults, ArmedFault
from pipelines.sandbox.google_ads.rows import ManagerMetricsError, query_rows, to_row
from pipelines.sandbox.google_ads.tls import sandbox_certificate
from pipelines.sandbox.google_ads.world import MANAGER_ID, World

VERSION = "v26"
FAILURE_KEY = f"google.ads.googleads.{VERSION}.errors.googleadsfailure-bin"
ACCESS_TOKEN = "sandbox-google-ads-access-token"
DEVELOPER_TOKEN = "sandbox-developer-token"
PAGE_SIZE = 10_000  # the API's fixed Search page size
STREAM_BATCH = 10_000  # rows per SearchStream message, as the API sends them

_ADS_SERVICE = f"google.ads.googleads.{VERSION}.services.GoogleAdsService"
_CUSTOMER_SERVICE = f"google.ads.googleads.{VERSION}.services.CustomerService"
_FAILURE = GoogleAdsFailure.pb()
_ERROR_CODE = _FAILURE.DESCRIPTOR.fields_by_name["errors"].message_type.fields_by_name["error_code"].message_type
_INVALID = "Request contains an invalid argument."


class _Abort(Exception):
    """Internal: an error answer (raised inside a handler, turned into status + trailing metadata)."""

    def __init__(self, code: grpc.StatusCode, details: str, failure: Any | None = None) -> None:
        super().__init__(details)
        self.code, self.details, self.failure = code, details, failure


@dataclass(frozen=True)
class Call:
    method: str
    customer_id: str | None
    query: str | None
    page_token: str | None = None


class GoogleAdsSandbox:
    """`with GoogleAdsSandbox(build_world()) as ads: ads.endpoint` — the port is chosen by the OS."""

    def __init__(self, world: World, *, page_size: int = PAGE_SIZE, stream_batch: int = STREAM_BATCH,
                 access_tokens: tuple[str, ...] = (ACCESS_TOKEN,), developer_token: str = DEVELOPER_TOKEN) -> None:
        self.world = world
        self.page_size = page_size
        self.stream_batch = stream_batch
        self.access_tokens = set(access_tokens)
        self.expired_tokens: set[str] = set()  # once valid, past their hour now: OAUTH_TOKEN_EXPIRED
        self.developer_token = developer_token
        self.faults = AdsFaults()
        self.calls: Counter[str] = Counter()  # "Search", "SearchStream:1000000001", ...
        self.log: list[Call] = []
        self._pages: dict[str, tuple[str, str, int]] = {}  # page token -> (customer, query, offset)
        self._lock = threading.Lock()
        self._request_ids = itertools.count(1)
        self._server: grpc.Server | None = None
        self.port = 0

    # -- lifecycle ---------------------------------------------------------------------------------------------

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> GoogleAdsSandbox:
        cert = sandbox_certificate()
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=8, thread_name_prefix="google-ads-sandbox"))
        ads = {
            "Search": grpc.unary_unary_rpc_method_handler(
                self._search, request_deserializer=google_ads_service.SearchGoogleAdsRequest.pb().FromString,
                response_serializer=_serialize),
            "SearchStream": grpc.unary_stream_rpc_method_handler(
                self._search_stream,
                request_deserializer=google_ads_service.SearchGoogleAdsStreamRequest.pb().FromString,
                response_serializer=_serialize),
        }
        customers = {
            "ListAccessibleCustomers": grpc.unary_unary_rpc_method_handler(
                self._list_accessible,
                request_deserializer=customer_service.ListAccessibleCustomersRequest.pb().FromString,
                response_serializer=_serialize),
        }
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(_ADS_SERVICE, ads),
                                         grpc.method_handlers_generic_handler(_CUSTOMER_SERVICE, customers)))
        credentials = grpc.ssl_server_credentials([(cert.key_pem, cert.cert_pem)])
        self.port = server.add_secure_port("127.0.0.1:0", credentials)
        server.start()
        self._server = server
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop(grace=None).wait()
            self._server = None

    def __enter__(self) -> GoogleAdsSandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def expire(self, access_token: str) -> None:
        """The access token's hour is over: calls with it answer OAUTH_TOKEN_EXPIRED from now on."""
        with self._lock:
            self.access_tokens.discard(access_token)
            self.expired_tokens.add(access_token)

    # -- handlers ----------------------------------------------------------------------------------------------

    def _search(self, request: Any, context: grpc.ServicerContext) -> Any:
        customer_id = request.customer_id
        try:
            fault = self._begin(context, "Search", customer_id, request.query, request.page_token or None)
            query = self._parse(request.query)
            if request.page_token:
                offset = self._page_offset(request.page_token, customer_id, request.query)
            else:
                offset = 0
            rows = self._rows(customer_id, query)
            self._slow(fault)
        except _Abort as abort:
            return self._answer_error(context, abort)
        page = rows[offset: offset + self.page_size]
        response = google_ads_service.SearchGoogleAdsResponse.pb()()
        response.results.extend(to_row(r) for r in page)
        response.field_mask.paths.extend(query.fields)
        if offset + self.page_size < len(rows):
            token = uuid.uuid4().hex
            with self._lock:
                self._pages[token] = (customer_id, request.query, offset + self.page_size)
            response.next_page_token = token
        return response

    def _search_stream(self, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        customer_id = request.customer_id
        try:
            fault = self._begin(context, "SearchStream", customer_id, request.query, None)
            query = self._parse(request.query)
            rows = self._rows(customer_id, query)
            self._slow(fault)
        except _Abort as abort:
            self._answer_error(context, abort)
            return
        request_id = self._request_id()
        if fault is not None and fault.kind is AdsFault.STREAM_CUT:
            half = rows[: (len(rows) + 1) // 2]
            if half:
                yield self._stream_message(half, query, request_id)
            self._answer_error(context, _Abort(grpc.StatusCode.UNAVAILABLE, "Stream removed"))
            return
        for start in range(0, len(rows), self.stream_batch):
            yield self._stream_message(rows[start: start + self.stream_batch], query, request_id)
        if not rows:
            yield self._stream_message([], query, request_id)

    def _list_accessible(self, request: Any, context: grpc.ServicerContext) -> Any:
        try:
            fault = self._begin(context, "ListAccessibleCustomers", None, None, None, needs_login=False)
            self._slow(fault)
        except _Abort as abort:
            return self._answer_error(context, abort)
        response = customer_service.ListAccessibleCustomersResponse.pb()()
        response.resource_names.append(f"customers/{MANAGER_ID}")
        return response

    # -- checks ------------------------------------------------------------------------------------------------

    def _begin(self, context: grpc.ServicerContext, method: str, customer_id: str | None, query: str | None,
               page_token: str | None, needs_login: bool = True) -> ArmedFault | None:
        """Count and log the call, check its credentials, apply an armed fault (the slow one is returned to be
        applied after the work, the others answer now)."""
        with self._lock:
            self.calls[method] += 1
            if customer_id:
                self.calls[f"{method}:{customer_id}"] += 1
            self.log.append(Call(method, customer_id, query, page_token))
        metadata = dict(context.invocation_metadata())
        fault = self.faults.take(method, customer_id, paged=page_token is not None)
        if fault is not None and fault.kind is not AdsFault.SLOW and fault.kind is not AdsFault.STREAM_CUT:
            raise _fault_error(fault)
        self._check_credentials(metadata, customer_id if needs_login else None)
        return fault

    def _check_credentials(self, metadata: dict[str, Any], customer_id: str | None) -> None:
        scheme, _, token = str(metadata.get("authorization", "")).partition(" ")
        if scheme.lower() == "bearer" and token in self.expired_tokens:
            raise _fault_error(ArmedFault(AdsFault.EXPIRED_TOKEN))
        if scheme.lower() != "bearer" or token not in self.access_tokens:
            raise _Abort(grpc.StatusCode.UNAUTHENTICATED,
                         "Request had invalid authentication credentials.",
                         _failure("authentication_error", "OAUTH_TOKEN_INVALID",
                                  "Oauth token in the header is not valid."))
        if metadata.get("developer-token") != self.developer_token:
            raise _Abort(grpc.StatusCode.UNAUTHENTICATED, "Request had invalid authentication credentials.",
                         _failure("authentication_error", "DEVELOPER_TOKEN_INVALID",
                                  "The developer token is not valid."))
        if customer_id is None:
            return
        customer = self.world.customers.get(customer_id)
        if customer is None:
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, _INVALID,
                         _failure("request_error", "INVALID_CUSTOMER_ID", "Invalid customer ID."))
        login = metadata.get("login-customer-id")
        allowed = {customer_id, *self.world.ancestors(customer_id)}
        if login not in allowed and not (customer.manager and login is None):
            raise _Abort(grpc.StatusCode.PERMISSION_DENIED, "The caller does not have permission",
                         _failure("authorization_error", "USER_PERMISSION_DENIED",
                                  "User doesn't have permission to access customer. Note: If you're accessing a "
                                  "client customer, the manager's customer id must be set in the "
                                  "'login-customer-id' header."))

    def _parse(self, text: str) -> gaql.Query:
        try:
            return gaql.parse(text)
        except gaql.QueryError as exc:
            raise _refused(exc) from None

    def _rows(self, customer_id: str, query: gaql.Query) -> list[dict[str, Any]]:
        try:
            return query.run(query_rows(self.world, customer_id, query))
        except gaql.QueryError as exc:
            raise _refused(exc) from None
        except ManagerMetricsError:
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, _INVALID,
                         _failure("query_error", "REQUESTED_METRICS_FOR_MANAGER",
                                  "Metrics cannot be requested for a manager account. To retrieve metrics, "
                                  "issue separate requests against each client account under the manager "
                                  "account.")) from None

    def _page_offset(self, token: str, customer_id: str, query: str) -> int:
        with self._lock:
            page = self._pages.get(token)
        if page is None or page[:2] != (customer_id, query):
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, _INVALID,
                         _failure("request_error", "INVALID_PAGE_TOKEN", "Page token is invalid."))
        return page[2]

    @staticmethod
    def _slow(fault: ArmedFault | None) -> None:
        if fault is not None and fault.kind is AdsFault.SLOW:
            time.sleep(fault.delay)

    # -- answers -----------------------------------------------------------------------------------------------

    def _request_id(self) -> str:
        return f"sandbox-{next(self._request_ids):08d}"

    def _stream_message(self, rows: list[dict[str, Any]], query: gaql.Query, request_id: str) -> Any:
        message = google_ads_service.SearchGoogleAdsStreamResponse.pb()()
        message.results.extend(to_row(r) for r in rows)
        message.field_mask.paths.extend(query.fields)
        message.request_id = request_id
        return message

    def _answer_error(self, context: grpc.ServicerContext, abort: _Abort) -> None:
        request_id = self._request_id()
        metadata: list[tuple[str, Any]] = [("request-id", request_id)]
        if abort.failure is not None:
            abort.failure.request_id = request_id
            metadata.append((FAILURE_KEY, abort.failure.SerializeToString()))
        context.set_trailing_metadata(tuple(metadata))
        context.abort(abort.code, abort.details)


def _refused(exc: gaql.QueryError) -> _Abort:
    return _Abort(grpc.StatusCode.INVALID_ARGUMENT, _INVALID, _failure(exc.kind, exc.code, exc.message, exc.trigger))


def _serialize(message: Any) -> bytes:
    return message.SerializeToString()


def _failure(kind: str, code: str, message: str, trigger: str | None = None, retry_seconds: int | None = None,
             rate_name: str | None = None) -> Any:
    """A GoogleAdsFailure with one error: `kind` is the ErrorCode field (query_error...), `code` its enum name."""
    failure = _FAILURE()
    error = failure.errors.add()
    field = _ERROR_CODE.fields_by_name[kind]
    assert field.type == FieldDescriptor.TYPE_ENUM
    setattr(error.error_code, kind, field.enum_type.values_by_name[code].number)
    error.message = message
    if trigger is not None:
        error.trigger.string_value = trigger
    if retry_seconds is not None:
        details = error.details.quota_error_details
        details.rate_scope = details.DESCRIPTOR.fields_by_name["rate_scope"].enum_type.values_by_name["DEVELOPER"].number
        details.rate_name = rate_name or ""
        details.retry_delay.seconds = retry_seconds
    return failure


def _fault_error(fault: ArmedFault) -> _Abort:
    kind = fault.kind
    if kind is AdsFault.DAILY_QUOTA:
        return _Abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "Resource has been exhausted (e.g. check quota).",
                      _failure("quota_error", "RESOURCE_EXHAUSTED",
                               "Number of operations for basic access has been exceeded.",
                               retry_seconds=23 * 3600, rate_name="Number of operations for basic access"))
    if kind is AdsFault.RATE_LIMIT:
        return _Abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "Resource has been exhausted (e.g. check quota).",
                      _failure("quota_error", "RESOURCE_TEMPORARILY_EXHAUSTED",
                               "Too many requests. Retry in 1 seconds.", retry_seconds=1,
                               rate_name="Requests per developer token per second"))
    if kind is AdsFault.EXPIRED_TOKEN:
        return _Abort(grpc.StatusCode.UNAUTHENTICATED, "Request had invalid authentication credentials.",
                      _failure("authentication_error", "OAUTH_TOKEN_EXPIRED", "Oauth token in the header has expired."))
    if kind is AdsFault.INTERNAL:
        return _Abort(grpc.StatusCode.INTERNAL, "Internal error encountered.",
                      _failure("internal_error", "INTERNAL_ERROR",
                               "An internal error has occurred. Please retry your request."))
    if kind is AdsFault.UNAVAILABLE:
        return _Abort(grpc.StatusCode.UNAVAILABLE, "The service is currently unavailable.")
    if kind is AdsFault.EXPIRED_PAGE_TOKEN:
        return _Abort(grpc.StatusCode.INVALID_ARGUMENT, _INVALID,
                      _failure("request_error", "EXPIRED_PAGE_TOKEN", "Page token has expired."))
    raise AssertionError(f"{kind} answers normally")
