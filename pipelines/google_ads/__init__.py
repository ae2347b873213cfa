"""The Google Ads source: one connection's accounts, campaign structure, keywords and daily metrics into
`raw_google_ads`, over the official google-ads client (API v26).

Plain dlt, no Dagster. `google_ads_source(run)` yields one resource per table, all merged on their keys:
- customers: the connection's login customer and every account under it, sub-managers walked as Google documents
  account hierarchies (`customer_client` level <= 1 of each manager), each account once; metrics are read from
  each ENABLED non-manager account (never a manager: the API refuses them), in its own time zone and currency;
- campaigns, ad groups, ads, keywords: listed in full (Search pages) on the first sync, then only the entities
  `change_status` reports added, changed or removed since the last sync, read again by resource name (listed in
  full again when the cursor is past ChangeStatus' 90 days or a window holds more changes than one query returns);
  removed ones are kept with status REMOVED (the API lists them unless filtered);
- campaign / ad group / ad daily metrics by `segments.date`, up to yesterday in the account's time zone, one
  SearchStream per 14-day slice, from the day after the cursor or the conversion window back (default 14 days,
  at most 90), whichever is earlier, so late conversions are merged into the days they belong to.
Cursors (the last day read, per report and account) advance in `run.state` only slice by slice, and the caller
saves them only after dlt has loaded; a daily quota stop (`run.stopped`) keeps the slices read before it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator
from zoneinfo import ZoneInfo

import dlt
import duckdb
import pyarrow as pa
from dlt.extract.resource import DltResource
from google.ads.googleads.v26.services.types.google_ads_service import GoogleAdsRow

from pipelines.connections.report import SyncReport
from pipelines.google_ads.client import AdsApi, DailyQuotaExhausted
from pipelines.google_ads.rows import arrow_schema, query_of, to_table
from pipelines.google_ads.settings import (
    CHANGE_STATUS_DELAY,
    CHANGE_STATUS_LIMIT,
    CHANGE_STATUS_MAX_AGE,
    CHANGE_STATUS_QUERY,
    CONVERSION_WINDOW_DAYS,
    CUSTOMERS,
    DAILY_STREAMS,
    DATASET_NAME,
    ENTITY_STREAMS,
    HISTORY_DAYS,
    MAX_CONVERSION_WINDOW_DAYS,
    RESOURCE_NAMES_PER_QUERY,
    SLICE_DAYS,
    SOURCE_NAME,
    Stream,
)
from pipelines.google_ads.windows import days_to_read, local_yesterday, slices
from pipelines.sql import ident, qualified
from pipelines.warehouse import table_exists

__all__ = ["DATASET_NAME", "SOURCE_NAME", "GoogleAdsRun", "SyncOptions", "google_ads_source"]

MERGE = {"disposition": "merge", "strategy": "delete-insert"}
CHANGE_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"  # change_status.last_change_date_time, in the account's time zone
_RESOURCE_TYPES = {v.number: v.name for v in GoogleAdsRow.pb().DESCRIPTOR.fields_by_name["change_status"]
                   .message_type.fields_by_name["resource_type"].enum_type.values}


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


@dataclass(frozen=True)
class SyncOptions:
    conversion_window_days: int = CONVERSION_WINDOW_DAYS
    slice_days: int = SLICE_DAYS
    history_days: int = HISTORY_DAYS
    clock: Callable[[], dt.datetime] = utc_now

    def __post_init__(self) -> None:
        if not 1 <= self.conversion_window_days <= MAX_CONVERSION_WINDOW_DAYS:
            raise ValueError(f"conversion_window_days must be between 1 and {MAX_CONVERSION_WINDOW_DAYS}")
        if self.slice_days < 1 or self.history_days < 1:
            raise ValueError("slice_days and history_days must be at least 1")


@dataclass
class GoogleAdsRun:
    """One connection's sync: its API, identity, cursors (`state`, changed as slices complete) and report.
    `warehouse_path` is read (read-only) to tell inserted rows from updated ones."""

    api: AdsApi
    connection_id: str
    workspace_id: str
    login_customer_id: str
    state: dict[str, Any]
    report: SyncReport
    options: SyncOptions = field(default_factory=SyncOptions)
    warehouse_path: Path | None = None
    stopped: str | None = None  # why the run stopped early (the daily quota), None when it read everything
    synced_at: dt.datetime = field(default_factory=utc_now)
    _customers: list[dict[str, Any]] | None = field(default=None, init=False, repr=False)
    _changes: dict[str, dict[str, list[str]] | None] = field(default_factory=dict, init=False, repr=False)
    _now: dt.datetime | None = field(default=None, init=False, repr=False)

    # -- accounts ----------------------------------------------------------------------------------------------

    def customers(self) -> pa.Table:
        """The login customer and the accounts under it (read once per run): the customer_client rows of level
        <= 1 of the login customer, then of each enabled sub-manager found, breadth first, each manager queried
        once; an account linked under several managers is kept once, at its shortest distance (`level`)."""
        if self._customers is None:
            found: dict[str, dict[str, Any]] = {}
            pending = [(self.login_customer_id, 0)]
            while pending:
                manager, depth = pending.pop(0)
                rows = to_table(CUSTOMERS, self.api.search(manager, query_of(CUSTOMERS)), self.connection_id,
                                self.workspace_id, self.synced_at).to_pylist()
                for row in rows:
                    if row["customer_id"] in found:
                        continue  # the sub-manager itself (level 0 of its own list), or a second path to an account
                    row["level"] += depth
                    found[row["customer_id"]] = row
                    if row["manager"] and row["level"] > 0 and row["status"] == "ENABLED":
                        pending.append((row["customer_id"], row["level"]))
            self._customers = list(found.values())
        return pa.Table.from_pylist(self._customers, schema=arrow_schema(CUSTOMERS))

    def clients(self) -> list[dict[str, Any]]:
        """The accounts whose campaigns are read: enabled, not managers (none once the daily quota stopped the
        run before they were listed)."""
        table = self.guarded(self.customers)
        if table is None:
            return []
        return [c for c in table.to_pylist() if c["status"] == "ENABLED" and not c["manager"]]

    # -- reading -----------------------------------------------------------------------------------------------

    def guarded(self, read: Callable[[], Any]) -> Any:
        """`read()`, or None once the daily quota is used up (the run stops there, cleanly)."""
        if self.stopped:
            return None
        try:
            return read()
        except DailyQuotaExhausted as exc:
            self.stopped = str(exc)
            return None

    def _table(self, stream: Stream, read: Callable[[], list[Any]], known: set[tuple]) -> pa.Table | None:
        """The rows `read()` returns as the stream's table, counted against the keys `known`; None when the
        daily quota stopped the run."""
        rows = self.guarded(read)
        if rows is None:
            return None
        table = to_table(stream, rows, self.connection_id, self.workspace_id, self.synced_at)
        self.tally(stream, table, known)
        return table

    def entities(self, stream: Stream) -> Iterator[pa.Table]:
        """Per client: every entity when `changed` cannot say what changed (`full_resync`), else only the ones it
        names; the stream's cursor for the client moves to this run's window end once they are read."""
        counts = self.report.stream(stream.table)
        cursors: dict[str, str] = self.state.setdefault("entities", {}).setdefault(stream.table, {})
        known = self.existing(stream, None)

        def listing(cid: str, names: list[str] | None) -> Callable[[], list[Any]]:
            return lambda: self.api.search(cid, query_of(stream, resource_names=names),
                                           on_restart=lambda: setattr(counts, "cursor_expired", True))

        for client in self.clients():
            cid = client["customer_id"]
            changed = self.guarded(lambda: self.changed(client))
            if self.stopped:
                return
            if changed is None:
                counts.full_resync = True
                reads = [listing(cid, None)]
            else:
                names = changed.get(stream.change_type, [])
                reads = [listing(cid, names[i: i + RESOURCE_NAMES_PER_QUERY])
                         for i in range(0, len(names), RESOURCE_NAMES_PER_QUERY)]
            for read in reads:
                table = self._table(stream, read, known)
                if table is None:
                    return
                if table.num_rows:
                    yield table
            cursors[cid] = self.window_end(client)

    def window_end(self, client: dict[str, Any]) -> str:
        """This run's instant in the client's time zone, as change_status writes times."""
        if self._now is None:
            self._now = self.options.clock()
        return self._now.astimezone(ZoneInfo(client["time_zone"])).strftime(CHANGE_TIME_FORMAT)

    def changed(self, client: dict[str, Any]) -> dict[str, list[str]] | None:
        """Resource names of the client's entities changed (added, changed, removed) since the entity cursors, by
        ChangeStatusResourceType, from one change_status query per run; None when everything must be listed: a
        first sync, a cursor past ChangeStatus' reach, or a window with more changes than one query returns."""
        cid = client["customer_id"]
        if cid not in self._changes:
            self._changes[cid] = self._read_changes(client)
        return self._changes[cid]

    def _read_changes(self, client: dict[str, Any]) -> dict[str, list[str]] | None:
        cid = client["customer_id"]
        ends = [self.state.get("entities", {}).get(s.table, {}).get(cid) for s in ENTITY_STREAMS]
        if None in ends:
            return None
        end = self.window_end(client)
        start = dt.datetime.strptime(min(ends), CHANGE_TIME_FORMAT) - CHANGE_STATUS_DELAY
        if start < dt.datetime.strptime(end, CHANGE_TIME_FORMAT) - CHANGE_STATUS_MAX_AGE:
            return None
        rows = self.api.search(cid, CHANGE_STATUS_QUERY.format(start=start.strftime(CHANGE_TIME_FORMAT), end=end))
        if len(rows) >= CHANGE_STATUS_LIMIT:
            return None
        changed: dict[str, list[str]] = {}
        for row in rows:
            status = row.change_status
            kind = _RESOURCE_TYPES[status.resource_type]
            changed.setdefault(kind, []).append(getattr(status, kind.lower()))
        return changed

    def daily(self, stream: Stream) -> Iterator[pa.Table]:
        cursors: dict[str, str] = self.state.setdefault("daily", {}).setdefault(stream.table, {})
        now = self.options.clock()
        spans = {}
        for client in self.clients():
            cid = client["customer_id"]
            span = days_to_read(cursors.get(cid), local_yesterday(now, client["time_zone"]),
                                self.options.conversion_window_days, self.options.history_days)
            if span is not None:
                spans[cid] = span
        if not spans:
            return
        known = self.existing(stream, min(first for first, _ in spans.values()))
        for cid, span in spans.items():
            for first, last in slices(*span, self.options.slice_days):
                table = self._table(stream, lambda: self.api.stream(cid, query_of(stream, first, last)), known)
                if table is None:
                    return
                if table.num_rows:
                    yield table
                if cursors.get(cid) is None or cursors[cid] < last.isoformat():
                    cursors[cid] = last.isoformat()

    # -- counts ------------------------------------------------------------------------------------------------

    def tally(self, stream: Stream, table: pa.Table, known: set[tuple]) -> None:
        counts = self.report.stream(stream.table)
        keys = zip(*(table.column(k).to_pylist() for k in stream.key))
        for key in keys:
            if key in known:
                counts.updated += 1
            else:
                counts.inserted += 1
                known.add(key)

    def existing(self, stream: Stream, since: dt.date | None) -> set[tuple]:
        """Keys the warehouse holds for this connection (from `since` for a daily report), read once per table."""
        if self.warehouse_path is None or not Path(self.warehouse_path).exists():
            return set()
        with duckdb.connect(str(self.warehouse_path), read_only=True) as con:
            if not table_exists(con, DATASET_NAME, stream.table):
                return set()
            sql = (f"SELECT {', '.join(ident(k) for k in stream.key)} FROM {qualified(f'{DATASET_NAME}.{stream.table}')} "
                   "WHERE connection_id = ?")
            params: list[Any] = [self.connection_id]
            if since is not None:
                sql += " AND date >= ?"
                params.append(since)
            return set(con.execute(sql, params).fetchall())


def _resource(body: Callable[[], Iterator[pa.Table]], stream: Stream) -> DltResource:
    return dlt.resource(body, name=stream.table, write_disposition=MERGE, primary_key=stream.primary_key,
                        columns=stream.columns)


@dlt.source(name=SOURCE_NAME, max_table_nesting=0)
def google_ads_source(run: GoogleAdsRun | None):
    """The eight tables of the run's connection (`None` only declares them, for Dagster)."""

    def customers() -> Iterator[pa.Table]:
        table = run.guarded(run.customers) if run else None
        if table is not None:
            run.tally(CUSTOMERS, table, run.existing(CUSTOMERS, None))
            yield table

    def entity(stream: Stream) -> Callable[[], Iterator[pa.Table]]:
        def body() -> Iterator[pa.Table]:
            if run:
                yield from run.entities(stream)
        return body

    def daily(stream: Stream) -> Callable[[], Iterator[pa.Table]]:
        def body() -> Iterator[pa.Table]:
            if run:
                yield from run.daily(stream)
        return body

    return [_resource(customers, CUSTOMERS),
            *(_resource(entity(s), s) for s in ENTITY_STREAMS),
            *(_resource(daily(s), s) for s in DAILY_STREAMS)]
