"""Scans that prove personal data is stored only as ciphertext: what the asset checks run.

A declared personal column passes when it is a BLOB column and every non-null value has the keyring's
envelope (version byte, nonce, tag); any other value is counted as readable. Works on any table through the
stored declaration, so a new source is covered by declaring its columns.
"""

from __future__ import annotations

from pipelines.privacy.categories import declaration
from pipelines.privacy.keyring import CIPHERTEXT_VERSION

# version byte + 12-byte nonce + 16-byte tag: the shortest possible ciphertext (of an empty string).
MIN_CIPHERTEXT_BYTES = 1 + 12 + 16


def unprotected_values(con, dataset: str, table: str, columns) -> dict[str, int]:
    """Per declared personal column of `dataset.table`, how many stored values are not ciphertext."""
    decl = declaration(columns)
    types = dict(
        con.execute(
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = ? AND table_name = ?",
            [dataset, table],
        ).fetchall()
    )
    found: dict[str, int] = {}
    for column in decl.encrypted:
        if column not in types:
            continue
        if types[column] != "BLOB":
            found[column] = con.execute(f'SELECT count("{column}") FROM "{dataset}"."{table}"').fetchone()[0]
            continue
        found[column] = con.execute(
            f'SELECT count(*) FROM "{dataset}"."{table}" WHERE "{column}" IS NOT NULL AND '
            f'(octet_length("{column}") < {MIN_CIPHERTEXT_BYTES} OR NOT starts_with(hex("{column}"), '
            f"'{CIPHERTEXT_VERSION:02X}'))"
        ).fetchone()[0]
    return found


# A run of 13 to 19 digits, single spaces or hyphens allowed between them (how card numbers are written), standing
# alone: not part of a longer token such as an id (`people/c…`, a UUID's digit-only groups, a longer number).
CARD_CANDIDATE = r"(?:^|[^A-Za-z0-9_/.-])((?:\d[ -]?){12,18}\d)(?:$|[^A-Za-z0-9_/-])"


def luhn_valid(digits: str) -> bool:
    """Whether a digit string passes the Luhn check (every payment card number does)."""
    total = 0
    for i, char in enumerate(reversed(digits)):
        d = int(char)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def card_number_values(con, schemas: list[str] | None = None) -> dict[str, int]:
    """Per text column of the warehouse (`schema.table.column`, `schemas` or every one but dlt's own tables),
    how many values hold something that looks like a payment card number: 13 to 19 digits, with or without
    separators, passing the Luhn check. Only columns with such a value are listed; no value is returned."""
    where = "" if schemas is None else f"AND table_schema IN ({', '.join('?' * len(schemas))})"
    columns = con.execute(
        "SELECT table_schema, table_name, column_name FROM information_schema.columns "
        "WHERE data_type = 'VARCHAR' AND table_catalog = current_database() AND table_name NOT LIKE '\\_dlt%' "
        f"ESCAPE '\\' {where} ORDER BY ALL", schemas or []).fetchall()
    found: dict[str, int] = {}
    for schema, table, column in columns:
        rows = con.execute(
            f'SELECT list_transform(regexp_extract_all("{column}", ?, 1), lambda x: regexp_replace(x, \'[ -]\', \'\', \'g\')) '
            f'FROM "{schema}"."{table}" WHERE regexp_matches("{column}", ?)', [CARD_CANDIDATE, CARD_CANDIDATE]).fetchall()
        hits = sum(1 for (candidates,) in rows if any(luhn_valid(c) for c in candidates))
        if hits:
            found[f"{schema}.{table}.{column}"] = hits
    return found
