"""Reading the personal-data declaration from dlt column hints.

Sources declare, per column, `x-data-category` (the column holds personal data of that category and is
stored encrypted), `x-blind-index-of` (the column holds the keyed hash of another column's plaintext) and
`x-subject-ref` / `x-subject-of` (the column holds the blind index of the data subject, the first non-null of
the listed columns; `x-subject-categories` names the data category of a listed column that is not stored
itself, such as a message's correspondent). dlt keeps `x-` hints in the stored schema, so every consumer — encryption at load, the
PII checks, and later retention and erasure — reads this one declaration instead of keeping its own list.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from dlt.common.schema.typing import TTableSchemaColumns

from pipelines.warehouse import table_exists

CATEGORY_HINT = "x-data-category"
BLIND_INDEX_HINT = "x-blind-index-of"
SUBJECT_REF_HINT = "x-subject-ref"
SUBJECT_OF_HINT = "x-subject-of"
SUBJECT_CATEGORIES_HINT = "x-subject-categories"
# A derived table's column holding a person's blind index (a pseudonymous key such as a visitor key).
PSEUDONYM_HINT = "x-pseudonym"
# The column naming the connected provider account a row was synced through (not personal data): when the
# account is disconnected, erasure removes every row carrying its id (`pipelines.privacy.dsr`).
CONNECTION_HINT = "x-connection"
# Categories whose values many people share (everyone behind one office NAT has the same IP): their blind
# indexes never find or stitch a person, or one erasure would take a whole office with it.
SHARED_CATEGORIES = frozenset({"user.device.ip_address"})
# Identifier kinds (the data category a blind index is keyed by, see `pipelines.privacy.keyring`) that prove
# who a person is: an account's user id, a mailbox address, a phone number. A request naming one reaches that
# person's rows; stitching never links two of them (`pipelines.privacy.subjects`).
VERIFIED_KINDS = frozenset({"user.unique_id", "user.contact.email", "user.contact.phone_number"})
# Identifier kinds a tracker sets as it likes (cookie and device ids): they only stitch anonymous rows to a
# verified identity, never one verified identity to another.
TRACKER_KINDS = frozenset({"user.device.cookie_id", "user.device.device_id"})


@dataclass(frozen=True)
class PersonalDataDeclaration:
    """What a table declares about personal data, by column name."""

    encrypted: dict[str, str]
    blind_indexes: dict[str, str]
    subject_ref: str | None
    subject_of: tuple[str, ...]
    pseudonyms: tuple[str, ...] = ()
    connection: str | None = None
    kinds: dict[str, str] | None = None  # plaintext column -> identifier kind, for indexed and subject columns

    def kind_of(self, plain: str) -> str:
        """The identifier kind a plaintext column's blind index is keyed by (its data category)."""
        return (self.kinds or {})[plain]

    def keys_of_kinds(self, kinds: frozenset[str]) -> list[str]:
        """The blind-index columns whose plaintext is of one of `kinds`."""
        return [c for c, plain in self.blind_indexes.items() if self.kind_of(plain) in kinds]

    @property
    def subject_keys(self) -> list[str]:
        """The columns naming a row's data subject: its subject reference, or a derived table's pseudonyms."""
        return [*([self.subject_ref] if self.subject_ref else []), *self.pseudonyms]

    @property
    def keys(self) -> list[str]:
        """Every column holding a blind index of a person: what export leaves out."""
        return [*self.blind_indexes, *([self.subject_ref] if self.subject_ref else []), *self.pseudonyms]

    @property
    def identity_keys(self) -> list[str]:
        """The key columns that identify one person (not those of shared values): what finds and stitches."""
        return [c for c in self.keys if self.encrypted.get(self.blind_indexes.get(c, "")) not in SHARED_CATEGORIES]

    @property
    def has_personal_data(self) -> bool:
        return bool(self.encrypted)


def declaration(columns: TTableSchemaColumns) -> PersonalDataDeclaration:
    """Collect the personal-data hints of one table's columns and check they are consistent."""
    encrypted = {name: str(col[CATEGORY_HINT]) for name, col in columns.items() if col.get(CATEGORY_HINT)}
    indexes = {name: str(col[BLIND_INDEX_HINT]) for name, col in columns.items() if col.get(BLIND_INDEX_HINT)}
    subject_cols = [name for name, col in columns.items() if col.get(SUBJECT_REF_HINT)]
    if len(subject_cols) > 1:
        raise ValueError(f"more than one subject reference column: {subject_cols}")
    subject_ref = subject_cols[0] if subject_cols else None
    subject_of = tuple(columns[subject_ref].get(SUBJECT_OF_HINT, ())) if subject_ref else ()
    for name, source in indexes.items():
        if source not in encrypted and source not in subject_of:
            raise ValueError(f"blind index {name} refers to {source}, which is not a declared personal column")
    for name, col in columns.items():
        if name in encrypted and col.get("data_type") != "binary":
            raise ValueError(f"personal column {name} must be stored as binary ciphertext")
    pseudonyms = tuple(name for name, col in columns.items() if col.get(PSEUDONYM_HINT))
    connection = next((name for name, col in columns.items() if col.get(CONNECTION_HINT)), None)
    declared = dict(columns[subject_ref].get(SUBJECT_CATEGORIES_HINT) or {}) if subject_ref else {}
    kinds = {}
    for plain in dict.fromkeys([*indexes.values(), *subject_of]):
        kind = encrypted.get(plain) or declared.get(plain)
        if not kind:
            raise ValueError(f"identifier column {plain} has no data category: declare it in {SUBJECT_CATEGORIES_HINT} "
                             "(a table loaded before blind indexes were keyed by kind must be reloaded)")
        kinds[plain] = kind
    return PersonalDataDeclaration(encrypted, indexes, subject_ref, subject_of, pseudonyms, connection, kinds)


def stored_tables(con, dataset: str) -> dict[str, TTableSchemaColumns]:
    """The column hints of every table in `dataset`, read back from dlt's stored schemas in the warehouse.

    This is what runs after load (checks, and later retention and erasure) rely on: the declaration as it
    was loaded, not as the code says today. `con` is a DuckDB (DB-API) connection to the warehouse.
    """
    if not table_exists(con, dataset, "_dlt_version"):
        return {}
    rows = con.execute(
        f'SELECT schema FROM "{dataset}"._dlt_version '
        "QUALIFY row_number() OVER (PARTITION BY schema_name ORDER BY inserted_at DESC) = 1"
    ).fetchall()
    tables: dict[str, TTableSchemaColumns] = {}
    for (text,) in rows:
        for name, table in json.loads(text).get("tables", {}).items():
            if not name.startswith("_dlt"):
                tables[name] = table.get("columns", {})
    return tables


def stored_declarations(con) -> dict[str, TTableSchemaColumns]:
    """The column hints of every dlt-loaded table of the warehouse, by `<dataset>.<table>`.

    Every dataset with a `_dlt_version` table counts, so a new source is found without being listed here.
    """
    datasets = [row[0] for row in con.execute(
        "SELECT DISTINCT table_schema FROM information_schema.tables "
        "WHERE table_name = '_dlt_version' AND table_catalog = current_database() ORDER BY 1"
    ).fetchall()]
    return {f"{dataset}.{table}": columns
            for dataset in datasets for table, columns in stored_tables(con, dataset).items()}
