"""What the Dagster catalog shows about every asset, from the declarations that already exist: owners, a `pii`
tag (Dagster tag values cannot hold a category list: the categories are metadata) on assets holding personal
columns, and column schemas (types, descriptions, data categories).

`definitions.py` passes every asset through `describe`, so an asset that loads a table of
`pipelines.catalog.DECLARED_TABLES` (mapped to its asset in `ASSET_OF_TABLE`) gets all of this with no code of
its own. The same descriptions become DuckDB column comments (`document_tables`), so an engineer opening the
warehouse reads what the UI shows.
"""

from __future__ import annotations

from typing import Iterable, Mapping

import duckdb
from dagster import AssetsDefinition, AssetSpec, TableColumn, TableColumnConstraints, TableSchema, map_asset_specs
from dlt.common.schema.typing import TColumnSchema, TTableSchemaColumns

from pipelines.catalog import ASSET_OF_TABLE, DECLARED_TABLES
from pipelines.privacy.categories import BLIND_INDEX_HINT, CATEGORY_HINT
from pipelines.sql import ident, literal
from pipelines.warehouse import table_exists

OWNERS = ["team:data-platform"]
PII_TAG = "pii"


def column_description(name: str, column: TColumnSchema) -> str:
    """The declared `description`, followed by what the privacy hints say about the column."""
    parts = [column["description"]] if column.get("description") else []
    if category := column.get(CATEGORY_HINT):
        parts.append(f"Personal data ({category}), stored encrypted.")
    if of := column.get(BLIND_INDEX_HINT):
        parts.append(f"Blind index (keyed hash) of {of}: joins and counts without the value.")
    if column.get("x-subject-ref"):
        parts.append(f"Reference of the person ({', '.join(column.get('x-subject-of', []))}) whose key encrypts the row.")
    return " ".join(parts)


def column_schema(columns: TTableSchemaColumns) -> TableSchema:
    """A table's declared columns as Dagster shows them: type, nullability, description (with the data category);
    a `pii` tag on each personal column."""
    return TableSchema(columns=[
        TableColumn(name=name, type=column.get("data_type", "unknown"), description=column_description(name, column) or None,
                    constraints=TableColumnConstraints(nullable=column.get("nullable", True),
                                                       unique=bool(column.get("unique") or column.get("primary_key"))),
                    tags={PII_TAG: ""} if column.get(CATEGORY_HINT) else {})
        for name, column in columns.items()
    ])


def _tables_of(key_path: tuple[str, ...]) -> list[str]:
    return [table for table, asset in ASSET_OF_TABLE.items() if asset == key_path]


def personal_categories(key_path: tuple[str, ...]) -> list[str]:
    """The data categories held by the tables an asset materialises (its own table and, say, a child table)."""
    return sorted({c[CATEGORY_HINT] for t in _tables_of(key_path) for c in DECLARED_TABLES[t].values()
                   if c.get(CATEGORY_HINT)})


def describe_spec(spec: AssetSpec) -> AssetSpec:
    path = tuple(spec.key.path)
    own_table = ".".join(path)
    categories = personal_categories(path)
    metadata = dict(spec.metadata) | ({"personal_data_categories": ", ".join(categories)} if categories else {})
    if own_table in DECLARED_TABLES:
        metadata["dagster/column_schema"] = column_schema(DECLARED_TABLES[own_table])
        others = [t for t in _tables_of(path) if t != own_table]
        if others:
            metadata["also_loads"] = ", ".join(others)
    return spec.replace_attributes(
        owners=spec.owners or OWNERS,
        tags={**spec.tags, **({PII_TAG: ""} if categories else {})},
        metadata=metadata,
    )


def describe(assets: Iterable[AssetsDefinition]) -> list[AssetsDefinition]:
    """Every asset with owners, `pii` tag and column schema from the catalogue's declarations."""
    return list(map_asset_specs(describe_spec, list(assets)))


def document_tables(con: duckdb.DuckDBPyConnection, tables: Mapping[str, TTableSchemaColumns] = DECLARED_TABLES) -> int:
    """Write each existing declared table's column descriptions as DuckDB comments; returns columns commented."""
    commented = 0
    for table, columns in tables.items():
        dataset, name = table.split(".")
        if not table_exists(con, dataset, name):
            continue
        present = {r[0] for r in con.execute("SELECT column_name FROM information_schema.columns "
                                             "WHERE table_schema = ? AND table_name = ?", [dataset, name]).fetchall()}
        for column, hints in columns.items():
            text = column_description(column, hints)
            if text and column in present:
                con.execute(f"COMMENT ON COLUMN {ident(dataset)}.{ident(name)}.{ident(column)} IS {literal(text)}")
                commented += 1
    return commented
