"""What each incremental SQL model's last build reflected, so its next build recomputes exactly what changed
since: the days that later loads brought rows of (late data included), and for a load-aware model only the
visitors they touched.

What a build records is the latest *complete* load of each dataset the model reads — the smallest of them —
taken before the model reads anything: a load still running, or cut short and finished by the next
ingestion, has a greater id, so its rows count as new next time. It is recorded in the transaction that
replaces the model's rows (after a full build's CREATE: a failure in between only makes the next build
recompute more).

A staging model that exposes dlt's load id declares it with the day of each row (header `changes`); the
next build of an incremental model reading it starts at the earliest day of the rows loaded after its record,
if that is before its latest day. Rows changed without a load — an erasure, a correction — carry no new load
id, so the privacy engine `forget`s every record before it changes rows: the next build of each tracked
model is then a full one, and equals a build from scratch.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import duckdb

from pipelines.sql import ident, literal, qualified

TABLE = "staging._model_loads"


@dataclass(frozen=True)
class Changes:
    """A model whose rows carry the load that brought them (`load_id`) and the day they belong to (`day`)."""

    table: str
    load_id: str
    day: str


def completed(con, datasets: tuple[str, ...]) -> str:
    """The latest load id that every one of `datasets` has completed ('' while one has none)."""
    latest = []
    for dataset in datasets:
        try:
            rows = con.execute(f"SELECT max(load_id) FROM {ident(dataset)}._dlt_loads WHERE status = 0").fetchall()
        except duckdb.CatalogException:  # nothing loaded into this dataset yet
            rows = [("",)]
        latest.append(rows[0][0] or "")
    return min(latest, default="")


def earliest_changed_day(con, trackers: tuple[Changes, ...], loaded_after: str) -> dt.date | None:
    """The earliest day of the rows that loads after `loaded_after` brought into `trackers` (None: none).
    Loads append, so DuckDB skips every row group older than the record by its load id's min / max."""
    days = []
    for changes in trackers:
        try:
            days.append(con.execute(f"SELECT min({ident(changes.day)}) FROM {qualified(changes.table)} "
                                    f"WHERE {ident(changes.load_id)} > ?", [loaded_after]).fetchall()[0][0])
        except duckdb.CatalogException:  # not built yet: nothing loaded
            continue
    return min((d for d in days if d is not None), default=None)


def seen(con, model: str) -> str:
    """What `model`'s last build recorded; '' when nothing is (first build, or the record was forgotten)."""
    try:
        rows = con.execute(f"SELECT loaded_until FROM {TABLE} WHERE model = ?", [model]).fetchall()
    except duckdb.CatalogException:
        return ""
    return rows[0][0] if rows else ""


def remember(con, model: str, loaded_until: str) -> None:
    """Record that `model` now reflects every load up to `loaded_until`."""
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {TABLE.split('.')[0]}; "
                f"CREATE TABLE IF NOT EXISTS {TABLE} (model VARCHAR PRIMARY KEY, loaded_until VARCHAR NOT NULL); "
                f"INSERT OR REPLACE INTO {TABLE} VALUES ({literal(model)}, {literal(loaded_until)})")


def forget(con) -> int:
    """Forget every model's record (rows are about to change without a load): each tracked model's next build
    recomputes everything. Returns how many records were dropped."""
    try:
        return con.execute(f"DELETE FROM {TABLE}").fetchall()[0][0]
    except duckdb.CatalogException:
        return 0
