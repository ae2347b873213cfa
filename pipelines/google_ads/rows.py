"""GoogleAdsRow protobufs into the arrow tables dlt loads: one column per declared field, enums by name, ids of
customers as text (the form the UI and the report show), dates as dates."""

from __future__ import annotations

import datetime as dt
from typing import Any, Callable

import pyarrow as pa
from google.ads.googleads.v26.services.types.google_ads_service import GoogleAdsRow
from google.protobuf.descriptor import FieldDescriptor

from pipelines.google_ads.settings import Field, Stream

_ARROW = {"text": pa.string(), "bigint": pa.int64(), "double": pa.float64(), "bool": pa.bool_(),
          "date": pa.date32(), "timestamp": pa.timestamp("us", tz="UTC")}
_ROW = GoogleAdsRow.pb().DESCRIPTOR


def arrow_schema(stream: Stream) -> pa.Schema:
    return pa.schema([pa.field(name, _ARROW[col["data_type"]], nullable=col.get("nullable", True))
                      for name, col in stream.columns.items()])


def _reader(field: Field) -> Callable[[Any], Any]:
    """A function reading `field` from a raw GoogleAdsRow, converted to its column's type."""
    descriptor = _ROW
    parts = []
    for part in field.gaql.split("."):
        # The generated protos rename fields that are Python builtins (`ad_group.type` is `type_`).
        proto = descriptor.fields_by_name.get(part) or descriptor.fields_by_name[f"{part}_"]
        parts.append(proto.name)
        leaf, descriptor = proto, proto.message_type
    names = {v.number: v.name for v in leaf.enum_type.values} if leaf.type == FieldDescriptor.TYPE_ENUM else None

    def read(row: Any) -> Any:
        value = row
        for part in parts:
            value = getattr(value, part)
        if names is not None:
            return names.get(value, "UNKNOWN")
        if field.data_type == "text":
            return str(value)
        if field.data_type == "date":
            return dt.date.fromisoformat(value)
        return value
    return read


def to_table(stream: Stream, rows: list[Any], connection_id: str, workspace_id: str,
             synced_at: dt.datetime) -> pa.Table:
    """The rows as `stream`'s arrow table."""
    readers = [(f.column, _reader(f)) for f in stream.fields]
    columns: dict[str, list[Any]] = {"connection_id": [connection_id] * len(rows),
                                     "workspace_id": [workspace_id] * len(rows)}
    for name, read in readers:
        columns[name] = [read(r) for r in rows]
    columns["synced_at"] = [synced_at] * len(rows)
    return pa.Table.from_pydict(columns, schema=arrow_schema(stream))


def query_of(stream: Stream, first: dt.date | None = None, last: dt.date | None = None,
             resource_names: list[str] | None = None) -> str:
    """The GAQL of `stream`, for the days [first, last] when it is a daily report, for the entities named when
    `resource_names` are given."""
    conditions = []
    if stream.daily:
        conditions.append(f"segments.date BETWEEN '{first.isoformat()}' AND '{last.isoformat()}'")
    if resource_names is not None:
        conditions.append(f"{stream.resource}.resource_name IN ({', '.join(map(repr, resource_names))})")
    if stream.where:
        conditions.append(stream.where)
    where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
    return f"SELECT {', '.join(f.gaql for f in stream.fields)} FROM {stream.resource}{where}"
