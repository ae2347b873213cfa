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
