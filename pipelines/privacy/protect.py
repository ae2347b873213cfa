"""Turning a relation of plaintext rows into stored rows: personal columns encrypted, blind indexes added.

Shared by every source. It works set-based in the source's DuckDB work database: the distinct
(workspace, subject, value) triples of each personal column go through the keyring once each (a million
rows usually hold far fewer distinct values), and the ciphertexts are joined back in SQL. Which columns to
encrypt or index is read from the table's column hints (`pipelines.privacy.categories`), never listed here.
"""

from __future__ import annotations

from typing import Protocol

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
from dlt.common.schema.typing import TTableSchemaColumns

from pipelines.privacy.categories import declaration
from pipelines.sql import ident as _ident

DISTINCT_BATCH_ROWS = 200_000


class FieldCipher(Protocol):
    """The part of the keyring that protection needs."""

    def encrypt_many(self, workspace_ids: pa.Array, subjects: pa.Array, values: pa.Array, context: str) -> pa.Array: ...

    def blind_index_many(self, workspace_ids: pa.Array, values: pa.Array) -> pa.Array: ...


def protect(
    con: duckdb.DuckDBPyConnection,
    source: str,
    columns: TTableSchemaColumns,
    cipher: FieldCipher,
    *,
    table: str,
    workspace_column: str = "workspace_id",
) -> str:
    """Return a SELECT over `source` that yields exactly `columns`, personal data encrypted.

    `source` must hold every non-personal column under its stored name, every personal column (and every
    subject column) as plaintext text under its declared name. The lookup tables it builds live in the
    work database of `con`, named after `table`.
    """
    decl = declaration(columns)
    ws = _ident(workspace_column)

    def subject(prefix: str) -> str:
        parts = [prefix + _ident(c) for c in decl.subject_of]
        return f"coalesce({', '.join(parts)}, '')" if parts else "''"

    joins: list[str] = []
    indexed = dict.fromkeys([*decl.blind_indexes.values(), *decl.subject_of])
    for plain in indexed:
        lookup = f"_bidx_{table}_{plain}"
        _build_lookup(
            con, lookup,
            f"SELECT DISTINCT {ws} AS ws, {_ident(plain)} AS v FROM {source} WHERE {_ident(plain)} IS NOT NULL",
            lambda batch: cipher.blind_index_many(batch.column("ws"), batch.column("v")),
        )
        joins.append(f"LEFT JOIN {lookup} ON {lookup}.ws = s.{ws} AND {lookup}.v = s.{_ident(plain)}")
    for name in decl.encrypted:
        lookup = f"_enc_{table}_{name}"
        context = value_context(table, name)
        _build_lookup(
            con, lookup,
            f"SELECT DISTINCT {ws} AS ws, {subject('')} AS subj, {_ident(name)} AS v "
            f"FROM {source} WHERE {_ident(name)} IS NOT NULL",
            lambda batch, context=context: cipher.encrypt_many(
                batch.column("ws"), _empty_to_null(batch.column("subj")), batch.column("v"), context
            ),
        )
        joins.append(
            f"LEFT JOIN {lookup} ON {lookup}.ws = s.{ws} AND {lookup}.subj = {subject('s.')} "
            f"AND {lookup}.v = s.{_ident(name)}"
        )
    select: list[str] = []
    for name in columns:
        if name in decl.encrypted:
            select.append(f"_enc_{table}_{name}.out AS {_ident(name)}")
        elif name in decl.blind_indexes:
            select.append(f"_bidx_{table}_{decl.blind_indexes[name]}.out AS {_ident(name)}")
        elif name == decl.subject_ref:
            refs = ", ".join(f"_bidx_{table}_{c}.out" for c in decl.subject_of)
            select.append(f"coalesce({refs}) AS {_ident(name)}")
        else:
            select.append(f"s.{_ident(name)}")
    return f"SELECT {', '.join(select)} FROM {source} AS s " + " ".join(joins)


def value_context(table: str, column: str) -> str:
    """What a stored value's ciphertext is bound to: its table (without the dataset) and column, so it cannot
    be replayed into another column. Encryption here, and decryption and re-encryption by the privacy
    engine, all name it through this."""
    return f"{table.rsplit('.', 1)[-1]}.{column}"


def _empty_to_null(values: pa.ChunkedArray | pa.Array) -> pa.Array:
    """Rows without a subject are keyed under the workspace key: the keyring takes null for that."""
    return pc.if_else(pc.equal(values, ""), pa.scalar(None, values.type), values)


def _build_lookup(con: duckdb.DuckDBPyConnection, name: str, distinct_sql: str, compute) -> None:
    """Materialise `distinct_sql` plus a computed `out` column, streaming batches through `compute`."""
    reader = con.sql(distinct_sql).to_arrow_reader(DISTINCT_BATCH_ROWS)
    writer = con.cursor()
    created = False
    for batch in reader:
        out = batch.append_column("out", compute(batch))
        if not created:
            writer.execute(f"CREATE OR REPLACE TABLE {name} AS SELECT * FROM out")
            created = True
        else:
            writer.execute(f"INSERT INTO {name} SELECT * FROM out")
    if not created:
        schema = reader.schema
        columns = ", ".join(f"{_ident(f.name)} VARCHAR" for f in schema)
        writer.execute(f"CREATE OR REPLACE TABLE {name} ({columns}, out BLOB)")
