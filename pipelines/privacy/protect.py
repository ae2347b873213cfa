"""Turning a relation of plaintext rows into stored rows: personal columns encrypted, blind indexes added.

Shared by every source. It works set-based in the source's DuckDB work database: each identifier's distinct
(workspace, value) pairs are blind-indexed once, and the distinct rows of (workspace, subject reference,
personal values) go through the keyring once each (a million rows usually hold far fewer distinct values),
all personal columns of a row in one call, so each subject's key is found, or made, once per batch rather
than once per column. The ciphertexts are joined back in SQL. Which columns to encrypt or index is read from
the table's column hints (`pipelines.privacy.categories`), never listed here.
"""

from __future__ import annotations

from typing import Any, Mapping, Protocol

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
from dlt.common.schema.typing import TTableSchemaColumns

from pipelines.phones import PHONE_KIND, canonical_phones, regions_of
from pipelines.privacy.categories import declaration
from pipelines.sql import ident as _ident

DISTINCT_BATCH_ROWS = 200_000


class FieldCipher(Protocol):
    """The part of the keyring that protection needs."""

    def encrypt_with_refs(self, workspace_ids: pa.Array, subject_refs: pa.Array, values: pa.Array, context: str,
                          *, create: bool = False) -> pa.Array: ...

    def encrypt_columns_with_refs(self, workspace_ids: pa.Array, subject_refs: pa.Array | None,
                                  columns: dict[str, pa.Array], *, create: bool = False) -> dict[str, pa.Array]: ...

    def blind_index_many(self, workspace_ids: pa.Array, values: pa.Array, *, kind: str) -> pa.Array: ...


def protect(
    con: duckdb.DuckDBPyConnection,
    source: str,
    columns: TTableSchemaColumns,
    cipher: FieldCipher,
    *,
    table: str,
    workspace_column: str = "workspace_id",
    held: list[str] | None = None,
) -> str:
    """Return a SELECT over `source` that yields exactly `columns`, personal data encrypted.

    `source` must hold every non-personal column under its stored name, every personal column (and every
    subject column) as plaintext text under its declared name. The lookup tables it builds live in the
    work database of `con`, named after `table`; with `held` (for a batch already in memory, whose lookups
    are no larger than it) they are arrow tables registered on `con` instead, their names added to `held`
    for the caller to unregister, so nothing is written to the work database's file.
    """
    decl = declaration(columns)
    ws = _ident(workspace_column)

    joins: list[str] = []
    indexed = dict.fromkeys([*decl.blind_indexes.values(), *decl.subject_of])
    for plain in indexed:
        lookup = f"_bidx_{table}_{plain}"
        _build_lookup(
            con, lookup,
            f"SELECT DISTINCT {ws} AS ws, {_ident(plain)} AS v FROM {source} WHERE {_ident(plain)} IS NOT NULL",
            lambda batch, kind=decl.kind_of(plain): {"out": cipher.blind_index_many(batch.column("ws"),
                                                                                    batch.column("v"), kind=kind)},
            held=held,
        )
        joins.append(f"LEFT JOIN {lookup} ON {lookup}.ws = s.{ws} AND {lookup}.v = s.{_ident(plain)}")
    # A row's subject reference: the blind index of its first non-null subject column, under that column's kind.
    ref = f"coalesce({', '.join(f'_bidx_{table}_{c}.out' for c in decl.subject_of)})" if decl.subject_of else "NULL"
    encrypted = list(decl.encrypted)
    if encrypted:  # one lookup for every encrypted column: each subject's key is found (or made) once per batch
        lookup = f"_enc_{table}"
        values = [f"v{i}" for i in range(len(encrypted))]
        outputs = tuple(f"out{i}" for i in range(len(encrypted)))
        contexts = [value_context(table, name) for name in encrypted]
        _build_lookup(
            con, lookup,
            f"SELECT DISTINCT s.{ws}, {ref}::BLOB, {', '.join(f's.{_ident(n)}' for n in encrypted)} "
            f"FROM {source} AS s {' '.join(joins)} "
            f"WHERE {' OR '.join(f's.{_ident(n)} IS NOT NULL' for n in encrypted)}",
            lambda batch: dict(zip(outputs, cipher.encrypt_columns_with_refs(
                batch.column("ws"), batch.column("ref"), {c: batch.column(v) for c, v in zip(contexts, values)},
                create=True).values())),
            names=("ws", "ref", *values), outputs=outputs, held=held,
        )
        joins.append(
            f"LEFT JOIN {lookup} ON {lookup}.ws = s.{ws} AND {lookup}.ref IS NOT DISTINCT FROM {ref} "
            + " ".join(f"AND {lookup}.{v} IS NOT DISTINCT FROM s.{_ident(n)}" for v, n in zip(values, encrypted))
        )
    select: list[str] = []
    for name in columns:
        if name in decl.encrypted:
            select.append(f"_enc_{table}.out{encrypted.index(name)} AS {_ident(name)}")
        elif name in decl.blind_indexes:
            select.append(f"_bidx_{table}_{decl.blind_indexes[name]}.out AS {_ident(name)}")
        elif name == decl.subject_ref:
            select.append(f"{ref} AS {_ident(name)}")
        else:
            select.append(f"s.{_ident(name)}")
    return f"SELECT {', '.join(select)} FROM {source} AS s " + " ".join(joins)


_PLAIN_TYPES = {"text": pa.string(), "bigint": pa.int64(), "bool": pa.bool_(), "double": pa.float64(),
                "timestamp": pa.timestamp("us", tz="UTC"), "date": pa.date32(), "binary": pa.string(),
                "json": pa.string()}


def plain_schema(columns: TTableSchemaColumns) -> pa.Schema:
    """The arrow schema of a table's plaintext rows: personal columns (and subject columns) as text."""
    plain = {name: _plain_type(col) for name, col in columns.items()}
    plain.update({name: pa.string() for name in declaration(columns).subject_of})
    return pa.schema(plain)


def _plain_type(column: dict[str, Any]) -> pa.DataType:
    """A column's arrow type; money is exact (a decimal of the declared precision and scale)."""
    if column.get("data_type") == "decimal":
        return pa.decimal128(column.get("precision", 38), column.get("scale", 9))
    return _PLAIN_TYPES[column.get("data_type", "text")]


def protect_table(work: duckdb.DuckDBPyConnection, plain: pa.Table, columns: TTableSchemaColumns, cipher: FieldCipher,
                  *, table: str, regions: Mapping[str, str] | None = None) -> tuple[pa.Table, int]:
    """Plaintext rows (as `plain_schema(columns)`) as the rows dlt stores: rows of suppressed (erased) people
    dropped, personal columns encrypted, blind indexes and the subject reference added, nullability as
    declared. Returns the table and how many rows were dropped. Needs `load_suppression_list` (and
    `pipelines.phones.set_regions`) on `work`: `WorkDatabase` does both. `regions`: the workspaces' default
    regions when the caller holds them already (a run of many batches reads them once), else read from `work`."""
    from pipelines.privacy.suppression import without_suppressed

    plain = with_canonical_phones(plain, columns, regions_of(work) if regions is None else regions)
    work.register("plain_rows", plain)
    held: list[str] = []
    try:
        source, dropped = without_suppressed(work, "plain_rows", columns, cipher, table=table)
        out = work.sql(protect(work, source, columns, cipher, table=table, held=held)).to_arrow_table()
    finally:
        for name in ("plain_rows", *held):
            work.unregister(name)
    fields = [f.with_nullable(columns[f.name].get("nullable", True)) for f in out.schema]
    return out.cast(pa.schema(fields)), dropped


def with_canonical_phones(plain: pa.Table, columns: TTableSchemaColumns, regions: Mapping[str, str]) -> pa.Table:
    """`plain` with every phone that identifies a person (blind-indexed or a subject column) in the one form
    all sources and requests share (`pipelines.phones`), read with its workspace's default region."""
    decl = declaration(columns)
    identifying = {*decl.blind_indexes.values(), *decl.subject_of}
    phones = [c for c in identifying if decl.kind_of(c) == PHONE_KIND and c in plain.column_names]
    if not phones or not len(plain):
        return plain
    for name in phones:
        at = plain.schema.get_field_index(name)
        plain = plain.set_column(at, plain.schema.field(at), canonical_phones(
            plain.column("workspace_id").combine_chunks(), plain.column(name).combine_chunks(), regions))
    return plain


def value_context(table: str, column: str) -> str:
    """What a stored value's ciphertext is bound to: its table (without the dataset) and column, so it cannot
    be replayed into another column. Encryption here, and decryption and re-encryption by the privacy
    engine, all name it through this."""
    return f"{table.rsplit('.', 1)[-1]}.{column}"


def blind_index_by_kind(cipher: FieldCipher, workspace_ids, which, values, kinds: list[str]) -> pa.Array:
    """Blind indexes of values of mixed kinds: row i is hashed under `kinds[which[i] - 1]` (null where `which`
    is 0). For a relation holding values of several identifier columns side by side (a subject reference
    taken from the first non-null of several columns, or landed lines' identifier fields)."""
    workspace_ids, which, values = (c.combine_chunks() if isinstance(c, pa.ChunkedArray) else c
                                    for c in (workspace_ids, which, values))
    refs = pa.nulls(len(values), pa.binary())
    for i, kind in enumerate(kinds, 1):
        mask = pc.equal(which, i)
        rows = pc.indices_nonzero(mask)
        if len(rows):  # each distinct (workspace, value) is hashed once, then joined back in row order
            picked = pa.table({"ws": pc.take(workspace_ids, rows), "v": pc.take(values, rows), "row": rows})
            distinct = picked.group_by(["ws", "v"]).aggregate([])
            distinct = distinct.append_column("bidx", cipher.blind_index_many(distinct.column("ws"), distinct.column("v"),
                                                                              kind=kind))
            hashed = picked.join(distinct, ["ws", "v"]).sort_by("row").column("bidx")
            refs = pc.replace_with_mask(refs, mask, hashed.combine_chunks())
    return refs


def _build_lookup(con: duckdb.DuckDBPyConnection, name: str, distinct_sql: str, compute,
                  names: tuple[str, ...] = ("ws", "v"), outputs: tuple[str, ...] = ("out",),
                  held: list[str] | None = None) -> None:
    """Materialise `distinct_sql` (columns `names`) plus the binary columns `outputs`, which `compute` returns
    for each batch (a dict by name), streaming batches through it: a table in the work database, or with
    `held` an arrow table registered on `con` (its name added to `held`)."""
    reader = con.sql(f"SELECT * FROM ({distinct_sql}) AS d({', '.join(names)})").to_arrow_reader(DISTINCT_BATCH_ROWS)
    writer = con.cursor() if held is None else None  # a second cursor: `reader` streams from `con`
    batches: list[pa.RecordBatch] = []
    created = False
    for batch in reader:
        computed = compute(batch)
        out = pa.RecordBatch.from_arrays([*batch.columns, *(computed[o] for o in outputs)],
                                         names=[*batch.schema.names, *outputs])
        if held is not None:
            batches.append(out)
        elif not created:
            writer.execute(f"CREATE OR REPLACE TABLE {name} AS SELECT * FROM out")
            created = True
        else:
            writer.execute(f"INSERT INTO {name} SELECT * FROM out")
    if batches or created:
        if held is not None:
            con.register(name, pa.Table.from_batches(batches))
            held.append(name)
        return
    empty = reader.schema.empty_table()  # no rows: the same columns, typed as the query's
    for output in outputs:
        empty = empty.append_column(output, pa.array([], pa.binary()))
    if held is not None:
        con.register(name, empty)
        held.append(name)
    else:
        writer.execute(f"CREATE OR REPLACE TABLE {name} AS SELECT * FROM empty")
