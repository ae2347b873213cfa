"""Daily ad-level insights of one ad account: async report runs over time slices, re-reading the lookback.

Which days: the first sync starts 37 months back (the furthest Meta serves), in the account's time zone;
later syncs read from the day after the last one read, but never start later than `lookback_days` (28) before
today, because late conversions keep changing the last 28 days. Each slice of `slice_days` is one async report
run (POST /act_ID/insights, polled with a bounded back-off, its rows paged): about 3 + rows/500 requests
where a per-ad, per-day loop would take one per ad and day. A run that fails ("Job Failed", "Job Skipped", or
not done in `poll_timeout_s`) is read again as synchronous requests of `fallback_days`; one Meta answers with
"reduce the amount of data" is split in halves down to single days (page sizes halve first, in the client).

A big sync is loaded in pieces, each its own dlt load of about `piece_rows` insight rows, so a load's memory
does not grow with the account: an ad has at most one row a day, so slices are at most `piece_rows / ads`
days long (the ads the warehouse holds, else Meta's count of them), and a piece ends after the slice that
reaches `piece_rows` rows. A sync that stopped after a piece keeps the first day it did not read
(`insights_resume`, saved with the cursors once the piece is loaded); the next load, in the same sync or
after a crash, starts there, and the cursor of the last day read advances only when the sync reaches today.

Rows merge on (connection, "<ad_id>:<day>"): re-reading a day replaces its row and its action rows, other days
stay as they are. Meta's `value` of an action is its figure under the account's attribution setting; it is
kept as window "default" beside each requested window.
"""

from __future__ import annotations

import datetime as dt
import time
from decimal import Decimal
from typing import Any, Iterator
from zoneinfo import ZoneInfo

import duckdb
import pyarrow as pa
from facebook_business.adobjects.ad import Ad
from facebook_business.adobjects.adaccount import AdAccount
from facebook_business.adobjects.adreportrun import AdReportRun
from facebook_business.exceptions import FacebookRequestError

from pipelines.facebook.client import REDUCE_DATA, GraphClient, ReduceData, error_code
from pipelines.facebook.settings import (
    ADS, ATTRIBUTION_WINDOWS, DEFAULT_WINDOW, HISTORY_MONTHS, INSIGHT_FIELDS, INSIGHTS, SyncOptions,
)
from pipelines.facebook.structure import listing_params
from pipelines.mail_common.session import SyncSession
from pipelines.mail_common.stage import CONNECTION, StreamWriter
from pipelines.sql import qualified
from pipelines.warehouse import table_exists

STATE_KEY = "insights_until"  # the last day (account time zone) read completely
RESUME_KEY = "insights_resume"  # the first day a sync that stopped after a piece has not read yet
_DONE, _FAILED = "Job Completed", ("Job Failed", "Job Skipped")


class JobFailed(Exception):
    """An async report run that will not deliver: its slice is read synchronously instead."""


def account_today(timezone_name: str, now: dt.datetime) -> dt.date:
    return now.astimezone(ZoneInfo(timezone_name)).date()


def months_before(day: dt.date, months: int) -> dt.date:
    """The same day `months` months earlier (the month's last day when it is shorter)."""
    year, month = divmod(day.year * 12 + day.month - 1 - months, 12)
    month += 1
    last = (dt.date(year + month // 12, month % 12 + 1, 1) - dt.timedelta(days=1)).day
    return dt.date(year, month, min(day.day, last))


def days_to_read(state: dict[str, Any], today: dt.date, options: SyncOptions) -> tuple[dt.date, dt.date]:
    """(first, last) day of this sync: from 37 months back the first time, then from the earlier of the day
    after the last read and the start of the lookback window; where an unfinished sync stopped, if one did."""
    oldest = months_before(today, HISTORY_MONTHS)
    if state.get(RESUME_KEY):
        return max(oldest, dt.date.fromisoformat(state[RESUME_KEY])), today
    last_read = state.get(STATE_KEY)
    if last_read is None:
        return oldest, today
    lookback_start = today - dt.timedelta(days=options.lookback_days - 1)
    return max(oldest, min(dt.date.fromisoformat(last_read) + dt.timedelta(days=1), lookback_start)), today


def slices(first: dt.date, last: dt.date, days: int) -> list[tuple[dt.date, dt.date]]:
    out = []
    while first <= last:
        end = min(last, first + dt.timedelta(days=days - 1))
        out.append((first, end))
        first = end + dt.timedelta(days=1)
    return out


def sync_insights(session: SyncSession, client: GraphClient, account: dict[str, Any], now: dt.datetime,
                  options: SyncOptions) -> Iterator[pa.Table]:
    """One piece of the sync's days: slices until one reaches `piece_rows` rows, or today."""
    today = account_today(account["timezone_name"], now)
    first, last = days_to_read(session.state, today, options)
    writer = StreamWriter(INSIGHTS, session.work.con, session.cipher, session.connection.connection_id,
                          session.connection.workspace_id, _held_since(session, first),
                          session.report.stream(INSIGHTS.table))
    writer.counts.full_resync = STATE_KEY not in session.state
    ad_account = AdAccount(f"act_{account['account_id']}", api=client.api)
    slice_days = max(1, min(options.slice_days, options.piece_rows // max(1, _ads(session, client, ad_account))))
    for since, until in slices(first, last, slice_days):
        yield from _slice(writer, client, ad_account, account, since, until, options)
        if writer.counts.inserted + writer.counts.updated >= options.piece_rows and until < last:
            session.state[RESUME_KEY] = (until + dt.timedelta(days=1)).isoformat()
            return
    session.state.pop(RESUME_KEY, None)
    session.state[STATE_KEY] = last.isoformat()


def _ads(session: SyncSession, client: GraphClient, ad_account: AdAccount) -> int:
    """Ads of the account, of every status (at most one insights row each a day): those the warehouse holds,
    else Meta's count (the first sync)."""
    held = len(session.work.existing(ADS, session.connection.connection_id))
    if held:
        return held
    listing = client.call(lambda: ad_account.get_ads(fields=[Ad.Field.id], params={
        **listing_params(ADS.table, None, 1), "summary": "true"}))
    return int(listing.total())


def _slice(writer: StreamWriter, client: GraphClient, ad_account: AdAccount, account: dict[str, Any],
           since: dt.date, until: dt.date, options: SyncOptions) -> Iterator[pa.Table]:
    try:
        run = _completed_run(client, ad_account, since, until, options)
    except JobFailed:
        yield from _fallback(writer, client, ad_account, account, since, until, options)
        return
    except FacebookRequestError as exc:  # the run itself was refused for its size
        if error_code(exc) != REDUCE_DATA or since == until:
            raise
        yield from _halves(writer, client, ad_account, account, since, until, options)
        return
    try:
        for rows in client.pages(lambda limit: run.get_insights(params={"limit": limit})):
            yield from writer.upsert(insight_record(row, account["currency"]) for row in rows)
    except ReduceData:  # rows already loaded are loaded again: the merge keeps one of each
        yield from _fallback(writer, client, ad_account, account, since, until, options)


def _fallback(writer: StreamWriter, client: GraphClient, ad_account: AdAccount, account: dict[str, Any],
              since: dt.date, until: dt.date, options: SyncOptions) -> Iterator[pa.Table]:
    for part in slices(since, until, options.fallback_days):
        yield from _sync_slice(writer, client, ad_account, account, *part)


def _halves(writer: StreamWriter, client: GraphClient, ad_account: AdAccount, account: dict[str, Any],
            since: dt.date, until: dt.date, options: SyncOptions) -> Iterator[pa.Table]:
    middle = since + (until - since) // 2
    yield from _slice(writer, client, ad_account, account, since, middle, options)
    yield from _slice(writer, client, ad_account, account, middle + dt.timedelta(days=1), until, options)


def _sync_slice(writer: StreamWriter, client: GraphClient, ad_account: AdAccount, account: dict[str, Any],
                since: dt.date, until: dt.date) -> Iterator[pa.Table]:
    """A slice read with synchronous requests; halved (down to one day) while Meta asks for less data."""
    try:
        for rows in client.pages(lambda limit: ad_account.get_insights(
                fields=list(INSIGHT_FIELDS), params={**_params(since, until), "limit": limit})):
            yield from writer.upsert(insight_record(row, account["currency"]) for row in rows)
    except ReduceData:
        if since == until:
            raise
        middle = since + (until - since) // 2
        yield from _sync_slice(writer, client, ad_account, account, since, middle)
        yield from _sync_slice(writer, client, ad_account, account, middle + dt.timedelta(days=1), until)


def _completed_run(client: GraphClient, ad_account: AdAccount, since: dt.date, until: dt.date,
                   options: SyncOptions) -> AdReportRun:
    """Start a report run and poll it with a bounded back-off until it completes."""
    run: AdReportRun = client.call(lambda: ad_account.get_insights(
        fields=list(INSIGHT_FIELDS), params=_params(since, until), is_async=True))
    delay, deadline = options.poll_initial_s, time.monotonic() + options.poll_timeout_s
    while True:
        status = client.call(lambda: run.api_get(fields=["async_status", "async_percent_completion"]))
        if status["async_status"] == _DONE:
            return run
        if status["async_status"] in _FAILED or time.monotonic() + delay > deadline:
            client.report.retries += 1
            raise JobFailed(f"report run for {since}..{until}: {status['async_status']}")
        time.sleep(delay)
        delay = min(delay * 2, options.poll_max_s)


def _params(since: dt.date, until: dt.date) -> dict[str, Any]:
    return {"level": "ad", "time_increment": 1, "time_range": {"since": since.isoformat(), "until": until.isoformat()},
            "action_attribution_windows": list(ATTRIBUTION_WINDOWS), "action_breakdowns": ["action_type"]}


def insight_record(row: dict[str, Any], currency: str) -> dict[str, Any]:
    """One Graph insights row (level=ad, one day) as a row of `ad_insights`, its actions under "actions"."""
    day = dt.date.fromisoformat(row["date_start"])
    actions = [*_action_rows(row.get("actions"), "action"), *_action_rows(row.get("action_values"), "action_value")]
    return {
        "insight_id": f"{row['ad_id']}:{day.isoformat()}", "account_id": row["account_id"],
        "campaign_id": row.get("campaign_id"), "adset_id": row.get("adset_id"), "ad_id": row["ad_id"],
        "date_day": day, "currency": row.get("account_currency") or currency,
        "impressions": _int(row.get("impressions")), "reach": _int(row.get("reach")), "clicks": _int(row.get("clicks")),
        "spend": Decimal(row["spend"]) if row.get("spend") is not None else None, "actions": actions,
    }


def _action_rows(entries: list[dict[str, Any]] | None, kind: str) -> list[dict[str, Any]]:
    rows = []
    for entry in entries or []:
        windows = {DEFAULT_WINDOW: entry.get("value"), **{w: entry.get(w) for w in ATTRIBUTION_WINDOWS}}
        rows += [{"kind": kind, "action_type": entry["action_type"], "attribution_window": window,
                  "value": Decimal(value)} for window, value in windows.items() if value is not None]
    return rows


def _int(value: Any) -> int | None:
    return int(value) if value is not None else None


def _held_since(session: SyncSession, first: dt.date) -> dict[str, str | None]:
    """Insight ids the warehouse holds for the connection from `first` on (what this sync can update)."""
    path = session.work.warehouse_path
    if path is None or not path.exists():
        return {}
    with duckdb.connect(str(path), read_only=True) as wh:
        if not table_exists(wh, INSIGHTS.dataset, INSIGHTS.table):
            return {}
        rows = wh.execute(f"SELECT insight_id FROM {qualified(f'{INSIGHTS.dataset}.{INSIGHTS.table}')} "
                          f"WHERE {CONNECTION} = ? AND date_day >= ?", [session.connection.connection_id, first]).fetchall()
    return {r[0]: None for r in rows}
