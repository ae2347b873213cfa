"""Fault switches for the sandbox servers: what goes wrong, for which endpoint, and for how many requests.

Why it exists: a sync is only trustworthy if it survives what real providers do — throttling with
Retry-After, bursts of 5xx, slow answers, connections cut before or during the body, expired access tokens
and expired incremental cursors. Tests and benchmarks arm these faults at runtime and assert on the outcome,
so every fault is deterministic: it hits the next `times` matching requests after letting `skip` matching
requests through, in arrival order, and `Faults.fired` counts what actually happened
(`pipelines.sandbox.faults`).

One `Faults` object belongs to each server. The provider-specific part (the error bodies) lives in each
server; this module only decides *when*.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from enum import Enum

from pipelines.sandbox.faults import FaultQueue

__all__ = ["Fault", "FaultKind", "Faults", "HTTP_KINDS", "STATUS_KINDS"]


class FaultKind(str, Enum):
    RATE_LIMIT = "rate_limit"  # 429 with Retry-After and the provider's throttling body
    SERVER_ERROR = "server_error"  # a 5xx (503 unless `status` says otherwise), Retry-After only if given
    SLOW = "slow"  # answer normally after `delay` seconds
    DROP = "drop"  # close the connection without answering
    TRUNCATE = "truncate"  # send the headers and half of the body (Content-Length promises all), then close
    EXPIRED_TOKEN = "expired_token"  # 401 with the provider's invalid/expired-token body
    EXPIRED_CURSOR = "expired_cursor"  # the history id / delta link / sync token in the request is expired
    PROVIDER_ERROR = "provider_error"  # the provider's own error `code` / `subcode` (Meta's), HTTP `status` (400)
    JOB_FAILED = "job_failed"  # the next async report job the server creates ends failed


# Faults that can hit any HTTP request, and the subset that can also hit one call inside a batch.
HTTP_KINDS: frozenset[FaultKind] = frozenset(FaultKind) - {FaultKind.EXPIRED_CURSOR, FaultKind.JOB_FAILED}
STATUS_KINDS: frozenset[FaultKind] = frozenset({FaultKind.RATE_LIMIT, FaultKind.SERVER_ERROR, FaultKind.EXPIRED_TOKEN,
                                                FaultKind.PROVIDER_ERROR})


@dataclass
class Fault:
    """One armed fault. `endpoint` is an endpoint name such as "gmail.messages.list" (None: any endpoint)."""

    kind: FaultKind
    times: int = 1
    endpoint: str | None = None
    skip: int = 0
    status: int = 503  # SERVER_ERROR only
    retry_after: int | None = None  # Retry-After seconds (an integer, what SDKs parse): RATE_LIMIT sends 1 unless
    # told otherwise, SERVER_ERROR sends it only when given
    delay: float = 0.5  # SLOW only: seconds
    code: int | None = None  # PROVIDER_ERROR (and a provider's RATE_LIMIT flavour): the provider's error code
    subcode: int | None = None

    def matches(self, endpoint: str, kinds: Collection[FaultKind]) -> bool:
        return self.kind in kinds and (self.endpoint is None or self.endpoint == endpoint)


class Faults(FaultQueue[Fault]):
    """The armed faults of one server, consumed in arrival order by its handler threads."""

    def inject(self, kind: FaultKind | str, times: int = 1, endpoint: str | None = None, skip: int = 0,
               **options: float) -> Fault:
        """Arm a fault for the next `times` requests to `endpoint` after `skip` of them passed untouched."""
        fault = Fault(FaultKind(kind), times, endpoint, skip, **options)  # type: ignore[arg-type]
        if fault.kind is FaultKind.PROVIDER_ERROR and "status" not in options:
            fault.status = 400
        if fault.kind is FaultKind.SERVER_ERROR and not 500 <= fault.status <= 599:
            raise ValueError("a server error needs a 5xx status")
        return self.arm(fault)

    def take(self, endpoint: str, kinds: Collection[FaultKind]) -> Fault | None:
        """The fault that hits this request to `endpoint`, if any (see `FaultQueue.take_matching`)."""
        return self.take_matching(lambda fault: fault.matches(endpoint, kinds), endpoint)
