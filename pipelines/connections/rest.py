"""One retrying, counting HTTP session for the REST sources built on dlt's REST client (LinkedIn Ads; any
provider without an official SDK).

Why it exists: dlt's `requests` Client already retries the right failures — 429 and 5xx answers, refused,
reset or cut connections — with exponential backoff, honouring Retry-After. What a sync also needs is to
report what that cost: every HTTP request sent (retries included), every retry, and every wait a rate limit
imposed. This module adds exactly that to dlt's session, so the retry rules stay dlt's, the backoff figures
stay the platform's one `RetryPolicy`, and the counts land in the connection's `SyncReport`.
"""

from __future__ import annotations

import requests
from dlt.sources.helpers.requests import Client
from requests.adapters import HTTPAdapter
from tenacity import RetryCallState

from pipelines.connections.report import SyncReport
from pipelines.connections.retry import RETRYABLE_STATUS, RetryPolicy


class _CountingAdapter(HTTPAdapter):
    """Counts every request that goes out on the wire (each retry is one more)."""

    def __init__(self, report: SyncReport) -> None:
        super().__init__()
        self.report = report

    def send(self, request, *args, **kwargs):  # type: ignore[override]
        self.report.http_requests += 1
        return super().send(request, *args, **kwargs)


def counted_session(report: SyncReport, policy: RetryPolicy = RetryPolicy()) -> requests.Session:
    """A session for `dlt.sources.helpers.rest_client.RESTClient(session=...)`: retried by dlt under `policy`
    (Retry-After honoured up to `policy.max_retry_after`), error statuses left for the caller to raise, and
    requests, retries and rate-limit waits counted in `report`."""
    session = Client(
        raise_for_status=False, status_codes=sorted(RETRYABLE_STATUS), request_max_attempts=policy.attempts,
        request_backoff_factor=policy.base_delay, request_max_retry_delay=policy.max_retry_after,
        respect_retry_after_header=True,
    ).session
    adapter = _CountingAdapter(report)
    session.mount("http://", adapter)
    session.mount("https://", adapter)

    def before_sleep(state: RetryCallState) -> None:
        report.retries += 1
        response = None if state.outcome is None or state.outcome.failed else state.outcome.result()
        if response is not None and response.status_code == 429:
            report.waits += 1
            report.wait_seconds += state.next_action.sleep if state.next_action else 0.0

    session.send.retry.before_sleep = before_sleep  # type: ignore[attr-defined] - tenacity's wrapped retrier
    return session
