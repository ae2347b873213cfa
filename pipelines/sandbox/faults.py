"""What every sandbox's fault switches share: armed faults consumed in arrival order, deterministically.

A fault hits the next `times` matching requests after letting `skip` matching requests through; `fired`
counts what actually happened ("kind" and "kind:<where>"). Each server's faults (`mail/faults.py`,
`google_ads/faults.py`) say what a fault is and what it matches; this holds the bookkeeping, shared by the
server's handler threads (hence the lock).
"""

from __future__ import annotations

import threading
from collections import Counter
from enum import Enum
from typing import Callable, Generic, Protocol, TypeVar


class ArmedFault(Protocol):
    kind: Enum
    times: int
    skip: int


F = TypeVar("F", bound=ArmedFault)


class FaultQueue(Generic[F]):
    """The armed faults of one server."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._armed: list[F] = []
        self.fired: Counter[str] = Counter()

    def arm(self, fault: F) -> F:
        if fault.times < 1 or fault.skip < 0:
            raise ValueError("times must be >= 1 and skip >= 0")
        with self._lock:
            self._armed.append(fault)
        return fault

    def clear(self) -> None:
        with self._lock:
            self._armed.clear()

    @property
    def armed(self) -> list[F]:
        with self._lock:
            return list(self._armed)

    def take_matching(self, matches: Callable[[F], bool], where: str) -> F | None:
        """The fault that hits this request, if any. Every matching fault still skipping counts the request as
        one it let through; the first matching fault that is done skipping fires (and is used up once)."""
        with self._lock:
            hit: F | None = None
            for fault in self._armed:
                if not matches(fault):
                    continue
                if fault.skip:
                    fault.skip -= 1
                elif hit is None:
                    hit = fault
            if hit is not None:
                hit.times -= 1
                if hit.times == 0:
                    self._armed.remove(hit)
                self.fired[hit.kind.value] += 1
                self.fired[f"{hit.kind.value}:{where}"] += 1
            return hit
