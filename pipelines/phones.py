"""Phone numbers in the one form every source stores and every request looks up.

A person's number reaches the platform typed in many ways: `(415) 555-0123` in the app, `+1 415-555-0123` in an
uploaded list, `4155550123` in a lead form. Blind indexes are keyed hashes of the exact text, so unless each
copy is brought to one form first, an erasure by phone finds some copies and misses the rest, and the contacts
model counts one person as several. The form is E.164 (`+14155550123`), read with the workspace's default
region (the app database's `workspaces.default_region`, copied into each sync's work database) so that a national
number gets its country code; a value phonenumbers cannot read as a possible number keeps its digits and a
leading `+`, so it is still indexed (and found by a request typed the same way) rather than dropped.
"""

from __future__ import annotations

import re
from typing import Mapping

import duckdb
import phonenumbers
import pyarrow as pa
import pyarrow.compute as pc

from pipelines.privacy.requests import normalise_identity
from pipelines.sql import ident
from pipelines.warehouse import table_exists

PHONE_KIND = "user.contact.phone_number"  # the data category of a phone number
APP_DATASET = "raw_crm_app"  # the app database's mirror, whose `workspaces` carry `default_region`
REGIONS_TABLE = "workspace_regions"
_E164_SHAPE = re.compile(r"\+[1-9][0-9]{6,14}")


def e164(value: str, region: str | None) -> str | None:
    """The number in E.164, or None when phonenumbers cannot parse it as a possible number (a number without
    its country code needs the region)."""
    try:
        number = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def canonical_phone(value: str | None, region: str | None) -> str | None:
    """The stored and indexed form of a phone: E.164 when readable, else its digits and a leading `+`.

    Only an E.164 form that reads back as itself counts (phonenumbers rewrites some degenerate numbers again
    on a second reading), so the form of a stored value is the value itself: a request or a re-sync that
    meets it again finds the same blind index."""
    if value is None:
        return None
    value = value.strip()
    if _E164_SHAPE.fullmatch(value):  # already in the form: most stored numbers, kept without a parse
        return value
    digits = normalise_identity("phone", value)
    return _stable_e164(value, region) or _stable_e164(digits, region) or digits or None


def _stable_e164(value: str, region: str | None) -> str | None:
    found = e164(value, region) if value else None
    return found if found is not None and e164(found, None) == found else None


def canonical_phones(workspace_ids: pa.Array, values: pa.Array, regions: Mapping[str, str]) -> pa.Array:
    """`canonical_phone` of each value under its row's workspace region; values already in E.164's shape are
    kept as they are, and each distinct other pair is read once."""
    shaped = pc.fill_null(pc.match_substring_regex(values, f"^{_E164_SHAPE.pattern}$"), True)
    todo = pc.indices_nonzero(pc.invert(shaped))
    if not len(todo):
        return values
    pairs = pa.table({"ws": pc.take(workspace_ids, todo), "v": pc.take(values, todo), "row": todo})
    distinct = pairs.group_by(["ws", "v"]).aggregate([])
    out = [canonical_phone(v, regions.get(w)) for w, v in zip(distinct.column("ws").to_pylist(),
                                                                distinct.column("v").to_pylist())]
    read = pairs.join(distinct.append_column("out", pa.array(out, pa.string())), ["ws", "v"]).sort_by("row")
    return pc.replace_with_mask(values, pc.invert(shaped), read.column("out").combine_chunks())


def warehouse_regions(con, catalog: str | None = None) -> dict[str, str]:
    """Each workspace's default region in the warehouse's mirror of the app database (none before its first
    sync); `con` is DB-API, on the warehouse or with it attached as `catalog`."""
    if not table_exists(con, APP_DATASET, "workspaces", catalog):
        return {}
    table = f"{ident(catalog)}.{APP_DATASET}.workspaces" if catalog else f"{APP_DATASET}.workspaces"
    return dict(con.execute(f"SELECT workspace_id, default_region FROM {table} "
                            "WHERE default_region IS NOT NULL").fetchall())


def set_regions(con: duckdb.DuckDBPyConnection, regions: Mapping[str, str]) -> None:
    """Replace the work database's regions (the app database's own sync sets them from the app itself)."""
    regions_rows = pa.table({"workspace_id": pa.array(list(regions), pa.string()),  # noqa: F841 - DuckDB scan
                      "default_region": pa.array(list(regions.values()), pa.string())})
    con.execute(f"CREATE OR REPLACE TEMP TABLE {REGIONS_TABLE} AS SELECT * FROM regions_rows")


def regions_of(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """The regions `set_regions` left in the work database (none if neither ran)."""
    if not con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = ? AND temporary",
                       [REGIONS_TABLE]).fetchall()[0][0]:
        return {}
    return dict(con.execute(f"SELECT * FROM {REGIONS_TABLE}").fetchall())
