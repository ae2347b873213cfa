"""Which days a run reads for one account: up to yesterday in the account's own time zone (today is still
being counted), from the day after the cursor, or from the conversion window back if that is earlier (its
conversions may have changed), in slices of SLICE_DAYS days."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo


def local_yesterday(now: dt.datetime, time_zone: str) -> dt.date:
    """Yesterday in `time_zone` at the instant `now` (aware)."""
    return now.astimezone(ZoneInfo(time_zone)).date() - dt.timedelta(days=1)


def days_to_read(cursor: str | None, yesterday: dt.date, conversion_window_days: int,
                 history_days: int) -> tuple[dt.date, dt.date] | None:
    """(first, last) day to read, or None when there is nothing (yesterday was read and the window is empty).

    `cursor` is the last day read by an earlier run (ISO date) or None before the first run."""
    if cursor is None:
        first = yesterday - dt.timedelta(days=history_days - 1)
    else:
        first = min(dt.date.fromisoformat(cursor) + dt.timedelta(days=1),
                    yesterday - dt.timedelta(days=conversion_window_days - 1))
    return (first, yesterday) if first <= yesterday else None


def slices(first: dt.date, last: dt.date, days: int) -> list[tuple[dt.date, dt.date]]:
    """[first, last] cut into consecutive ranges of `days` days (the last one shorter), oldest first."""
    out = []
    start = first
    while start <= last:
        end = min(start + dt.timedelta(days=days - 1), last)
        out.append((start, end))
        start = end + dt.timedelta(days=1)
    return out
