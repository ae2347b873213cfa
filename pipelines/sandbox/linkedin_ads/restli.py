"""Rest.li 2.0 query parameters, parsed strictly the way LinkedIn's servers read them.

Why it exists: LinkedIn's versioned `/rest` API takes structured query parameters in Rest.li's own syntax —
`dateRange=(start:(year:2026,month:11,day:1),end:(year:2026,month:11,day:30))`,
`accounts=List(urn%3Ali%3AsponsoredAccount%3A123)` — where `(`, `)`, `,` and `:` are syntax and must be sent
literally, and only the leaf values are percent-encoded. A client that lets an HTTP library encode the
parentheses (`%28`) or leaves a URN's colons unencoded sends a different value, which LinkedIn rejects with
400. The sandbox reads the raw query string with this module, so a source that gets the encoding wrong
fails against the sandbox as it would against LinkedIn.
"""

from __future__ import annotations

import datetime as dt
import urllib.parse
from typing import Union

RestliValue = Union[str, list["RestliValue"], dict[str, "RestliValue"]]

_SYNTAX = "(),:"


class RestliError(ValueError):
    """A query parameter that is not valid Rest.li 2.0 (the message names the parameter, never a token)."""


def split_query(raw: str) -> dict[str, list[str]]:
    """The raw (still encoded) values of each parameter name; names are decoded."""
    params: dict[str, list[str]] = {}
    for part in raw.split("&") if raw else []:
        name, sep, value = part.partition("=")
        if not sep:
            raise RestliError(f"query parameter {urllib.parse.unquote(name)!r} has no value")
        params.setdefault(urllib.parse.unquote(name), []).append(value)
    return params


def leaf(raw: str, name: str) -> str:
    """A plain parameter (`q=analytics`): no Rest.li syntax characters, percent-decoded."""
    if not raw or any(c in raw for c in _SYNTAX):
        raise RestliError(f"query parameter {name!r} must be a single encoded value")
    return urllib.parse.unquote(raw)


def parse(raw: str, name: str) -> RestliValue:
    """One parameter value: a record `(k:v,...)`, a `List(v,...)` or an encoded leaf."""
    value, end = _value(raw, 0, name)
    if end != len(raw):
        raise RestliError(f"query parameter {name!r}: unexpected {raw[end]!r} at position {end}")
    return value


def _value(raw: str, pos: int, name: str) -> tuple[RestliValue, int]:
    if raw.startswith("List(", pos):
        return _sequence(raw, pos + len("List("), name)
    if raw.startswith("(", pos):
        return _record(raw, pos + 1, name)
    end = pos
    while end < len(raw) and raw[end] not in _SYNTAX:
        end += 1
    if end == pos:
        raise RestliError(f"query parameter {name!r}: empty value at position {pos}")
    return urllib.parse.unquote(raw[pos:end]), end


def _sequence(raw: str, pos: int, name: str) -> tuple[list[RestliValue], int]:
    items: list[RestliValue] = []
    if raw.startswith(")", pos):
        return items, pos + 1
    while True:
        item, pos = _value(raw, pos, name)
        items.append(item)
        if raw.startswith(",", pos):
            pos += 1
        elif raw.startswith(")", pos):
            return items, pos + 1
        else:
            raise RestliError(f"query parameter {name!r}: List not closed at position {pos}")


def _record(raw: str, pos: int, name: str) -> tuple[dict[str, RestliValue], int]:
    record: dict[str, RestliValue] = {}
    if raw.startswith(")", pos):
        return record, pos + 1
    while True:
        colon = raw.find(":", pos)
        key = raw[pos:colon] if colon > pos else ""
        if not key or any(c in key for c in "(),"):
            raise RestliError(f"query parameter {name!r}: expected a field name at position {pos}")
        if key in record:
            raise RestliError(f"query parameter {name!r}: field {key!r} given twice")
        record[key], pos = _value(raw, colon + 1, name)
        if raw.startswith(",", pos):
            pos += 1
        elif raw.startswith(")", pos):
            return record, pos + 1
        else:
            raise RestliError(f"query parameter {name!r}: record not closed at position {pos}")


def date_range(raw: str) -> tuple[dt.date, dt.date | None]:
    """`dateRange=(start:(year:..,month:..,day:..),end:(...))`: start required, end optional and not before it."""
    value = parse(raw, "dateRange")
    if not isinstance(value, dict) or "start" not in value or set(value) - {"start", "end"}:
        raise RestliError("query parameter 'dateRange' must be (start:(...)[,end:(...)])")
    start = _date(value["start"], "dateRange.start")
    end = _date(value["end"], "dateRange.end") if "end" in value else None
    if end is not None and end < start:
        raise RestliError("query parameter 'dateRange': end is before start")
    return start, end


def _date(value: RestliValue, where: str) -> dt.date:
    if not isinstance(value, dict) or set(value) != {"year", "month", "day"}:
        raise RestliError(f"{where} must be (year:YYYY,month:M,day:D)")
    parts = {}
    for key in ("year", "month", "day"):
        text = value[key]
        if not isinstance(text, str) or not text.isdigit():
            raise RestliError(f"{where}.{key} must be a whole number")
        parts[key] = int(text)
    try:
        return dt.date(parts["year"], parts["month"], parts["day"])
    except ValueError:
        raise RestliError(f"{where} is not a calendar date") from None


def urn_list(raw: str, name: str, kind: str) -> list[int]:
    """`List(urn%3Ali%3A<kind>%3A123,...)` -> the ids; every item must be a URN of `kind`."""
    value = parse(raw, name)
    if not isinstance(value, list) or not value:
        raise RestliError(f"query parameter {name!r} must be a non-empty List(...)")
    ids = []
    for item in value:
        prefix = f"urn:li:{kind}:"
        if not isinstance(item, str) or not item.startswith(prefix) or not item[len(prefix):].isdigit():
            raise RestliError(f"query parameter {name!r}: items must be urn:li:{kind}:<id> URNs")
        ids.append(int(item[len(prefix):]))
    return ids

