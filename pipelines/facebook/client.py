"""facebook-business set up for one connection: every request counted, paced by Meta's usage headers,
retried under the shared policy, paged with a page size that halves when Meta asks for less data.

The SDK is the client; this module only configures it. The API object is built directly on a
`FacebookSession` (what `FacebookAdsApi.init(..., crash_log=False)` does, minus making it the process-wide
default: several connections sync in one process, and the crash reporter `init` installs by default posts
tracebacks to Meta, so it is never installed). A sandbox connection's session points at the sandbox
(`session.GRAPH`).

Pacing: Meta reports how much of each budget a caller has used (`x-app-usage`, `x-ad-account-usage`,
`x-business-use-case-usage`, percentages); at `usage_threshold_pct` the next request waits until the
account's budget refills (`reset_time_duration`, or `estimated_time_to_regain_access` minutes), so the sync
slows down before Meta refuses it rather than after. A refusal anyway (codes 4, 17, 613, 80000-80014) and
transient errors (codes 1 and 2, `is_transient`, HTTP 5xx, dropped or cut connections) are retried with
back-off. Code 190 (token expired or revoked) raises `ReauthorizationRequired`: retrying cannot help.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator, TypeVar

import requests
from facebook_business.api import Cursor, FacebookAdsApi
from facebook_business.exceptions import FacebookRequestError
from facebook_business.session import FacebookSession

from pipelines.connections.errors import ReauthorizationRequired
from pipelines.connections.report import SyncReport
from pipelines.connections.retry import Retrier, RetryPolicy
from pipelines.facebook.settings import API_VERSION, GRAPH_URL, PROVIDER, SyncOptions

T = TypeVar("T")

RATE_LIMIT_CODES = frozenset({4, 17, 32, 613, *range(80000, 80015)})
TRANSIENT_CODES = frozenset({1, 2})
EXPIRED_TOKEN = 190
REDUCE_DATA = (1, 99)  # "Please reduce the amount of data you're asking for, then retry your request"


@dataclass(frozen=True)
class GraphEndpoint:
    """Where the Graph API is and the Meta app whose secret signs each request (appsecret_proof)."""

    url: str = GRAPH_URL
    app_id: str | None = None
    app_secret: str | None = None


class ReduceData(Exception):
    """Meta asked for less data and the page size is already at its minimum: ask for a shorter time range."""


def error_code(exc: BaseException) -> tuple[int | None, int | None]:
    if isinstance(exc, FacebookRequestError):
        return exc.api_error_code(), exc.api_error_subcode()
    return None, None


def usage_wait(headers: Any, threshold: float) -> float:
    """Seconds to wait before the next request, from Meta's usage headers (0 below `threshold` percent)."""
    wait = 0.0
    for name in ("x-app-usage", "x-ad-account-usage", "x-business-use-case-usage"):
        raw = headers.get(name) if headers is not None else None
        if not raw:
            continue
        try:
            usage = json.loads(raw)
        except ValueError:
            continue
        entries = [e for group in usage.values() for e in group] if name == "x-business-use-case-usage" else [usage]
        for entry in entries:
            if not isinstance(entry, dict):
                continue
            pct = max((float(entry.get(k) or 0) for k in ("call_count", "total_cputime", "total_time",
                                                            "acc_id_util_pct")), default=0.0)
            regain = float(entry.get("estimated_time_to_regain_access") or 0) * 60
            if pct >= threshold or regain:
                wait = max(wait, regain, float(entry.get("reset_time_duration") or 0), 1.0)
    return wait


class PacedApi(FacebookAdsApi):
    """The SDK's API object, counting each request and waiting before one when the last answer's usage
    headers said the budget is nearly spent."""

    def __init__(self, session: FacebookSession, report: SyncReport, options: SyncOptions) -> None:
        super().__init__(session, API_VERSION)
        self.report = report
        self.options = options
        self.resume_at = 0.0

    def call(self, method, path, params=None, headers=None, files=None, url_override=None, api_version=None):  # noqa: ANN001, ANN201 - the SDK's signature
        pause = self.resume_at - time.monotonic()
        if pause > 0:
            self.report.waits += 1
            self.report.wait_seconds += pause
            time.sleep(pause)
        self.report.http_requests += 1
        try:
            response = super().call(method, path, params, headers, files, url_override, api_version)
        except FacebookRequestError as exc:
            self._paced(exc.http_headers())
            raise
        self._paced(response.headers())
        return response

    def _paced(self, headers: Any) -> None:
        wait = min(usage_wait(headers, self.options.usage_threshold_pct), self.options.max_usage_wait_s)
        if wait:
            self.resume_at = time.monotonic() + wait


class GraphRetrier(Retrier):
    """The shared retry policy with Meta's codes: rate limits and transient codes are retried; a refusal
    of the token is not an error to retry but a reason to ask the user to reconnect."""

    def transient(self, exc: BaseException) -> tuple[bool, float | None]:
        if isinstance(exc, requests.RequestException):  # refused, reset or cut connection, timeout
            return True, None
        if isinstance(exc, FacebookRequestError):
            code, subcode = error_code(exc)
            if (code, subcode) == REDUCE_DATA:
                return False, None
            if code in RATE_LIMIT_CODES:
                return True, usage_wait(exc.http_headers(), 0.0) or None
            return bool(code in TRANSIENT_CODES or exc.api_transient_error() or (exc.http_status() or 0) >= 500), None
        return super().transient(exc)


class GraphClient:
    """One connection's API object and the retried calls the source makes with it."""

    def __init__(self, token: str, endpoint: GraphEndpoint, report: SyncReport, options: SyncOptions) -> None:
        session = FacebookSession(endpoint.app_id, endpoint.app_secret, token, timeout=options.http_timeout_s)
        session.GRAPH = endpoint.url
        self.api = PacedApi(session, report, options)
        self.report = report
        self.options = options
        self.retrier = GraphRetrier(report, lambda exc: (None, None), RetryPolicy(attempts=6, max_retry_after=60.0))

    def call(self, fn: Callable[[], T]) -> T:
        """`fn()` retried under the policy; Meta's refusal of the token becomes `ReauthorizationRequired`."""
        try:
            return self.retrier.call(fn)
        except FacebookRequestError as exc:
            if exc.api_error_code() == EXPIRED_TOKEN:
                raise ReauthorizationRequired(
                    f"{PROVIDER}: Graph API error {EXPIRED_TOKEN} (access token expired or revoked); "
                    "the account must be connected again") from None
            raise

    def pages(self, make: Callable[[int], Cursor]) -> Iterator[list[dict[str, Any]]]:
        """Every page of an edge as plain dicts. `make(limit)` starts the listing (the SDK fetches the first
        page at once); on "reduce the amount of data" the page size halves down to `min_page_size`, below
        which `ReduceData` asks the caller for a shorter range."""
        limit = self.options.page_size
        while True:
            try:
                cursor = self.call(lambda: make(limit))
                break
            except FacebookRequestError as exc:
                limit = self._halved(exc, limit)
        while True:
            yield [cursor[i].export_all_data() for i in range(len(cursor))]
            while True:
                try:
                    more = self.call(cursor.load_next_page)
                    break
                except FacebookRequestError as exc:
                    cursor.params["limit"] = self._halved(exc, int(cursor.params.get("limit", limit)))
            if not more:
                return

    def _halved(self, exc: FacebookRequestError, limit: int) -> int:
        if error_code(exc) != REDUCE_DATA:
            raise exc
        if limit // 2 < self.options.min_page_size:
            raise ReduceData(f"{PROVIDER}: Meta asks for less data at {limit} rows per page") from None
        self.report.retries += 1
        return limit // 2
