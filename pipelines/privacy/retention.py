"""Retention enforcement: one set-based statement per table deletes or anonymises every expired record.

What "anonymised" means is read from the table's stored declaration, never listed per table: every column
declared personal (its ciphertext), every blind index and the subject reference become NULL, the rule's
`clear` columns are emptied and its `truncate` columns generalised (timestamps to the day). The clear
analytics columns a source derived at load (IP network, browser family, page path) stay: they are the
aggregate-safe remainder. Once no row anywhere still refers to a subject, its key is destroyed, so even a
copy of an old backup can no longer be decrypted for that person.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import duckdb
from dlt.common.schema.typing import TTableSchemaColumns

from pipelines.privacy.audit import AuditLog
from pipelines.privacy.categories import declaration, stored_declarations
from pipelines.privacy.keys import destroy_unreferenced_subjects
from pipelines.privacy.policy import Rule
from pipelines.sql import ident, qualified
from pipelines.warehouse import table_exists

AUDIT_ACTOR = "privacy.retention"


@dataclass(frozen=True)
class RetentionResult:
    """What one pass did to one table: counts only (they go to Dagster metadata and the audit log)."""

    table: str
    action: str
    cutoff: str
    rows_expired: int
    subjects_expired: int
    keys_destroyed: int


def cutoff(rule: Rule, now: dt.datetime) -> dt.datetime | dt.date:
    """The oldest age a record may have: a timestamp for timestamp columns, a day for date columns."""
    limit = now.astimezone(dt.timezone.utc) - dt.timedelta(days=rule.keep_days)
    return limit if rule.age_is_timestamp else limit.date()


def expired_sql(rule: Rule) -> str:
    """A predicate (one `?` parameter: the cutoff) true for rows older than the rule allows."""
    cast = "TIMESTAMPTZ" if rule.age_is_timestamp else "DATE"
    return f"{ident(rule.age_column)} < ?::{cast}"


def identifying_sql(rule: Rule, columns: TTableSchemaColumns) -> str:
    """A predicate true for rows that still hold anything anonymisation removes or generalises."""
    parts = [f"{ident(c)} IS NOT NULL" for c in anonymised_columns(rule, columns)]
    parts += [f"{ident(c)} <> date_trunc('{unit}', {ident(c)})" for c, unit in rule.truncate.items()]
    return "(" + " OR ".join(parts) + ")" if parts else "false"


def anonymised_columns(rule: Rule, columns: TTableSchemaColumns) -> list[str]:
    decl = declaration(columns)
    return [c for c in dict.fromkeys([*decl.encrypted, *decl.keys, *rule.clear]) if c in columns]


def violations(con: duckdb.DuckDBPyConnection, rule: Rule, columns: TTableSchemaColumns, now: dt.datetime) -> int:
    """How many records are older than the rule allows (for 'anonymise': and still identifying)."""
    where = expired_sql(rule)
    if rule.action == "anonymise":
        where += f" AND {identifying_sql(rule, columns)}"
    return con.execute(f"SELECT count(*) FROM {qualified(rule.table)} WHERE {where}", [cutoff(rule, now)]).fetchone()[0]


def enforce(
    con: duckdb.DuckDBPyConnection,
    rule: Rule,
    columns: TTableSchemaColumns,
    all_tables: dict[str, TTableSchemaColumns],
    cipher,
    now: dt.datetime,
) -> RetentionResult:
    """Delete or anonymise the expired records of `rule.table` in one transaction, then destroy the keys of
    subjects that no table refers to any more. `all_tables` is every stored table (the key check spans them)."""
    limit = cutoff(rule, now)
    where = expired_sql(rule)
    if rule.action == "anonymise":
        where += f" AND {identifying_sql(rule, columns)}"
    table = qualified(rule.table)
    subject = declaration(columns).subject_ref
    con.execute("BEGIN")
    try:
        if subject:
            con.execute(
                f"CREATE OR REPLACE TEMP TABLE expired_subjects AS SELECT DISTINCT workspace_id, "
                f"{ident(subject)} AS subject_ref FROM {table} WHERE {where} AND {ident(subject)} IS NOT NULL",
                [limit],
            )
        if rule.action == "delete":
            rows = con.execute(f"DELETE FROM {table} WHERE {where}", [limit]).fetchone()[0]
        else:
            sets = [f"{ident(c)} = NULL" for c in anonymised_columns(rule, columns)]
            sets += [f"{ident(c)} = date_trunc('{u}', {ident(c)})" for c, u in rule.truncate.items()]
            rows = con.execute(f"UPDATE {table} SET {', '.join(sets)} WHERE {where}", [limit]).fetchone()[0]
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    subjects = destroyed = 0
    if subject:
        subjects = con.execute("SELECT count(*) FROM expired_subjects").fetchone()[0]
        destroyed = destroy_unreferenced_subjects(con, "expired_subjects", all_tables, cipher)
        con.execute("DROP TABLE expired_subjects")
    return RetentionResult(rule.table, rule.action, str(limit), int(rows), int(subjects), destroyed)


def _stored(con: duckdb.DuckDBPyConnection, rule: Rule,
            derived_tables: dict[str, TTableSchemaColumns] | None) -> dict[str, TTableSchemaColumns] | None:
    """Every stored table's declaration (dlt's schemas read back, plus `derived_tables`, the SQL models
    holding pseudonymous keys), or None while the rule's table is not built yet (nothing to enforce)."""
    tables = {**stored_declarations(con), **(derived_tables or {})}
    return tables if rule.table in tables and table_exists(con, rule.dataset, rule.name) else None


def past_retention(con: duckdb.DuckDBPyConnection, rule: Rule, now: dt.datetime,
                   derived_tables: dict[str, TTableSchemaColumns] | None = None) -> int:
    """`violations` of the table as stored: what the `within_retention` checks report."""
    tables = _stored(con, rule, derived_tables)
    return violations(con, rule, tables[rule.table], now) if tables else 0


def run_rule(
    con: duckdb.DuckDBPyConnection, rule: Rule, cipher, audit: AuditLog, now: dt.datetime,
    derived_tables: dict[str, TTableSchemaColumns] | None = None,
) -> RetentionResult:
    """Enforce one rule against the warehouse as stored and append the audit entry."""
    tables = _stored(con, rule, derived_tables)
    if tables is None:
        result = RetentionResult(rule.table, rule.action, str(cutoff(rule, now)), 0, 0, 0)
    else:
        con.execute("SET TimeZone = 'UTC'")
        result = enforce(con, rule, tables[rule.table], tables, cipher, now)
    audit.append(actor=AUDIT_ACTOR, action=f"retention.{rule.action}", tables={rule.table: result.rows_expired},
                 counts={"cutoff": result.cutoff, "keep_days": rule.keep_days, "term": rule.term.id,
                         "subjects_expired": result.subjects_expired, "keys_destroyed": result.keys_destroyed})
    return result
