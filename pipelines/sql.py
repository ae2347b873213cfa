"""Quoting for SQL built from declared names and values (privacy engine, SQL models, snapshots)."""

from __future__ import annotations


def ident(name: str) -> str:
    """A quoted identifier."""
    return '"' + name.replace('"', '""') + '"'


def literal(text: str) -> str:
    """A quoted SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def qualified(table: str) -> str:
    """`dataset.table` as a quoted two-part name."""
    dataset, name = table.split(".", 1)
    return f"{ident(dataset)}.{ident(name)}"


def loose_json_field(text: str, name: str) -> str:
    """SQL reading string field `name` from `text`, a line that may not be valid JSON (a regular expression:
    broken tracker lines still say whose they are). Ingestion keys quarantined lines by it and erasure
    finds landed lines by it, so both read a line the same way."""
    return f"nullif(regexp_extract({text}, '\"{name}\"\\s*:\\s*\"([^\"\\\\]*)\"', 1), '')"
