"""One retry policy for every provider call: transient failures are retried with backoff, and counted.

Why not the SDKs' own retries: google-api-python-client does not retry a body cut short (IncompleteRead)
and retries nothing unless asked; msgraph-sdk retries 429/503/504 but not a dropped connection. Retrying
here, around each call, covers both the same way and lets the sync report how many retries it needed.
A provider tells this module only how to read a status code and Retry-After out of its own exceptions.
"""

from __future__ import annotations

import http.client
import socket
import time
from dataclasses import dataclass
from typing import Callable, TypeVar

import httpx

from pipelines.connections.report import SyncReport

T = TypeVar("T")

RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})
# Transport failures: a connection refused, reset or cut mid-body, a timeout.
TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (
    ConnectionError, socket.timeout, TimeoutError, http.client.HTTPException, httpx.TransportError,
)


@dataclass(frozen=True)
class RetryPolicy:
    """`attempts` tries in all; waits double from `base_delay`, capped by `max_delay` (Retry-After wins,
    within `max_retry_after`)."""

    attempts: int = 6
    base_delay: float = 0.2
    max_delay: float = 5.0
    max_retry_after: float = 30.0


StatusOf = Callable[[BaseException], "tuple[int | None, float | None]"]


class Retrier:
    """Runs calls under a policy; `status_of` maps a provider exception to (status, retry-after seconds)."""

    def __init__(self, report: SyncReport, status_of: StatusOf, policy: RetryPolicy = RetryPolicy()) -> None:
        self.report = report
        self.status_of = status_of
        self.policy = policy

    def transient(self, exc: BaseException) -> tuple[bool, float | None]:
        """Whether `exc` is worth another try, and how long the provider asked us to wait."""
        if isinstance(exc, TRANSPORT_ERRORS):
            return True, None
        status, retry_after = self.status_of(exc)
        return status in RETRYABLE_STATUS, retry_after

    def wait(self, attempt: int, retry_after: float | None) -> None:
        """Sleep before retry number `attempt` (0-based) and count it."""
        self.report.retries += 1
        delay = min(self.policy.base_delay * 2 ** attempt, self.policy.max_delay)
        if retry_after is not None:
            delay = min(retry_after, self.policy.max_retry_after)
        time.sleep(delay)

    def call(self, fn: Callable[[], T]) -> T:
        """`fn()`, retried while it fails transiently; the last failure is raised."""
        for attempt in range(self.policy.attempts):
            try:
                return fn()
            except Exception as exc:  # noqa: BLE001 - classified below, re-raised when not transient
                retry, retry_after = self.transient(exc)
                if not retry or attempt == self.policy.attempts - 1:
                    raise
                self.wait(attempt, retry_after)
        raise AssertionError("unreachable")
