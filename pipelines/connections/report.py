"""What one connection's sync did (any provider): counts only, never data (the numbers end up in Dagster metadata)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields


@dataclass
class StreamCounts:
    """Rows of one stream (table) written by a sync."""

    inserted: int = 0
    updated: int = 0
    deleted: int = 0
    suppressed: int = 0  # rows (and child rows) offered again of people erased earlier: not loaded
    full_resync: bool = False
    cursor_expired: bool = False


@dataclass
class SyncReport:
    """A sync's per-stream counts plus the requests it made, the retries they needed and the waits the
    provider's rate limits imposed (before a request, from usage headers, or after a rate-limit answer)."""

    connection_id: str
    provider: str
    http_requests: int = 0
    retries: int = 0
    waits: int = 0
    wait_seconds: float = 0.0
    streams: dict[str, StreamCounts] = field(default_factory=dict)

    def stream(self, name: str) -> StreamCounts:
        return self.streams.setdefault(name, StreamCounts())

    @classmethod
    def combined(cls, reports: list[SyncReport]) -> SyncReport:
        """The reports of one sync's several loads as one: counts added up, flags kept if any load set them."""
        total = cls(reports[0].connection_id, reports[0].provider)
        for report in reports:
            total.http_requests += report.http_requests
            total.retries += report.retries
            total.waits += report.waits
            total.wait_seconds += report.wait_seconds
            for name, counts in report.streams.items():
                into = total.stream(name)
                for f in fields(StreamCounts):
                    mine, theirs = getattr(into, f.name), getattr(counts, f.name)
                    setattr(into, f.name, (mine or theirs) if isinstance(theirs, bool) else mine + theirs)
        return total

    def as_metadata(self, stream: str | None = None) -> dict:
        """Flat numbers for one stream (or all), for Dagster metadata and the CLI."""
        chosen = {stream: self.stream(stream)} if stream else self.streams
        out: dict = {"http_requests": self.http_requests, "retries": self.retries, "waits": self.waits,
                     "wait_seconds": round(self.wait_seconds, 3)}
        for name, counts in chosen.items():
            prefix = "" if stream else f"{name}."
            out.update({f"{prefix}{k}": v for k, v in asdict(counts).items()})
        return out
