"""Finding every stored row of a set of people, through blind indexes only, in a few set-based joins.

Identity resolution (the rule the README's privacy section states):

1. A request names one identifier of one kind (user id, e-mail, phone, cookie id, device id). Blind indexes
   are keyed by kind (`pipelines.privacy.keyring`), so it can only ever equal a column of that kind: a device
   id equal to someone's user id is a different blind index.
2. A row is the requester's (owned) when its data subject — its subject reference, or a derived table's
   pseudonymous key — is the identifier given.
3. Stitching only widens a *verified* identifier (an account's user id, an e-mail, a phone: `VERIFIED_KINDS`),
   and only through tracker identifiers (cookie and device ids: `TRACKER_KINDS`) seen on the requester's own
   rows; a row whose subject is such a tracker identifier is an anonymous row (it carries no verified
   identity, or that would be its subject), and it is owned too. A tracker identifier also seen on a row of
   another verified identity is contested and not followed, for anyone: two accounts never meet through
   a cookie or device id a tracker can set at will. Verified identities are never stitched to each other.
4. Erasure also reaches rows that merely hold the identifier given in a column of its kind (a contact card
   of someone else holding the requester's phone), and lines kept under `_unattributed` (no proven
   workspace) that hold it; a tracker identifier given reaches only rows without a verified identity.
   These rows are deleted, but only the keys of the request's own identities are destroyed.
5. Access exports, corrections and consent changes touch owned rows only, in the request's workspace.

Each step is one equi-join per identifier column, so a batch of 1,000 people costs about as much as one.
Nothing is decrypted to search.
"""

from __future__ import annotations

import duckdb
import pyarrow as pa
from dlt.common.schema.typing import TTableSchemaColumns

from pipelines.privacy.categories import TRACKER_KINDS, VERIFIED_KINDS, PersonalDataDeclaration, declaration
from pipelines.privacy.requests import normalise_identities
from pipelines.sql import ident, literal, qualified
from pipelines.warehouse import table_exists

# (request_id, workspace_id, bidx, kind, stitch, mentions): the identifier given and its identifier kind,
# whether it is stitched (a verified identifier in a real workspace) and whether rows merely holding it count
# (erasure).
TARGETS = "dsr_targets"
IDENTITIES = "dsr_identities"  # (request_id, workspace_id, bidx): the identifier given plus those stitched to it

# The identifier kind (data category) of each kind of identity a request can name.
REQUEST_KINDS = {
    "user_id": "user.unique_id",
    "anonymous_id": "user.device.cookie_id",
    "device_id": "user.device.device_id",
    "email": "user.contact.email",
    "phone": "user.contact.phone_number",
    "facebook_user_id": "user.unique_id.meta",
    "google_user_id": "user.unique_id.google",
    "connection": "system.connection_id",
}
# The identity kind a request names for each blind-index kind (one each).
_IDENTITY_KIND_OF = {category: kind for kind, category in REQUEST_KINDS.items()}


def request_kind(identity_kind: str) -> str:
    """The blind-index kind of a request's identity."""
    return REQUEST_KINDS[identity_kind]


def normalise_stored(category: str, values: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """Identifiers of blind-index kind `category` in the form a request naming them is normalised to
    (`normalise_identity` of that identity kind), so stored rows and landed lines are hashed as requests are."""
    return normalise_identities(_IDENTITY_KIND_OF[category], values)


def is_verified(identity_kind: str) -> bool:
    """Whether a request's identity proves who the person is (and so may be stitched)."""
    return request_kind(identity_kind) in VERIFIED_KINDS


def _stored_with(con: duckdb.DuckDBPyConnection, tables: dict[str, TTableSchemaColumns], pick) -> dict:
    """Stored tables with a workspace column for which `pick(declaration)` is not empty, with what it picked."""
    found = {}
    for table, columns in tables.items():
        dataset, name = table.split(".", 1)
        picked = pick(declaration(columns))
        if picked and "workspace_id" in columns and table_exists(con, dataset, name):
            found[table] = picked
    return found


def searchable_tables(con: duckdb.DuckDBPyConnection,
                      tables: dict[str, TTableSchemaColumns]) -> dict[str, PersonalDataDeclaration]:
    """Stored tables with a workspace column and at least one identity column, with their declaration."""
    return _stored_with(con, tables, lambda decl: decl if decl.identity_keys else None)


def hits_table(table: str, kind: str = "person") -> str:
    """The temp table holding (rid, request_id) of `table`'s rows that belong to the requests' people (or,
    kind `connection`, to the requests' disconnected accounts)."""
    return ("dsr_hits_" if kind == "person" else f"dsr_{kind}_hits_") + table.replace(".", "__")


def connection_tables(con: duckdb.DuckDBPyConnection, tables: dict[str, TTableSchemaColumns]) -> dict[str, str]:
    """Stored tables with a workspace column and a declared connection column, with that column."""
    return _stored_with(con, tables, lambda decl: decl.connection)


def find_connection_rows(con: duckdb.DuckDBPyConnection, cipher, tables: dict[str, str],
                         request_ids: list[str]) -> None:
    """Fill one connection hits table per table for the given requests, whose TARGETS bidx is the blind index
    of a connection id. The connection ids held are few: each distinct one is indexed once and joined."""
    marks = ", ".join("'" + r.replace("'", "''") + "'" for r in request_ids)
    for table, column in tables.items():
        held = con.execute(f"SELECT DISTINCT workspace_id, {ident(column)} FROM {qualified(table)} "
                           f"WHERE {ident(column)} IS NOT NULL").fetchall()
        if not held:  # an empty table (a merge's truncated staging copy) still gets its empty hits table
            con.execute(f"CREATE OR REPLACE TEMP TABLE {hits_table(table, 'connection')} (rid BIGINT, request_id VARCHAR)")
            continue
        indexed = pa.table({  # noqa: F841 - read by DuckDB's replacement scan
            "workspace_id": pa.array([w for w, _ in held], pa.string()),
            "connection_id": pa.array([c for _, c in held], pa.string()),
            "bidx": cipher.blind_index_many([w for w, _ in held], [c for _, c in held],
                                            kind=request_kind("connection")),
        })
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE {hits_table(table, 'connection')} AS SELECT t.rowid AS rid, g.request_id "
            f"FROM {qualified(table)} t JOIN indexed i ON t.workspace_id = i.workspace_id "
            f"AND t.{ident(column)} = i.connection_id JOIN {TARGETS} g ON g.workspace_id = i.workspace_id "
            f"AND g.bidx = i.bidx WHERE g.request_id IN ({marks})").fetchall()


def _owned(table: str, decl: PersonalDataDeclaration, against: str) -> list[str]:
    """Rows whose data subject is one of `against`'s identities."""
    return [f"SELECT t.rowid AS rid, g.request_id FROM {qualified(table)} t JOIN {against} g "
            f"ON t.workspace_id = g.workspace_id AND t.{ident(c)} = g.bidx" for c in decl.subject_keys]


def _verified_null(decl: PersonalDataDeclaration) -> str:
    """SQL: the row `t` carries no verified identity."""
    return " AND ".join(f"t.{ident(c)} IS NULL" for c in decl.keys_of_kinds(VERIFIED_KINDS)) or "true"


def _mentions(table: str, decl: PersonalDataDeclaration, kinds: set[str]) -> list[str]:
    """Rows holding an erasure's identifier in a column of its kind (of any subject) that are not already the
    request's own rows (`_owned`: their subject is one of the request's identities); a tracker identifier
    reaches only rows without a verified identity. Only the columns of a kind some erasure names are joined
    (`kinds`): a blind index is keyed by its kind, so no other column can hold it.

    A row whose subject key holds the very identifier it mentions is owned (the identifier given is one of
    the request's identities): such rows, most rows of an identified person, are left out before the join, and
    so are rows without the column (a NULL never joins): without that test the scan hands the join every
    anonymous row, whose NULL is distinct from its subject."""
    subject = decl.subject_keys
    verified = set(decl.keys_of_kinds(VERIFIED_KINDS))
    not_owned = [f"NOT EXISTS (SELECT 1 FROM {IDENTITIES} i WHERE i.request_id = g.request_id "
                 f"AND i.workspace_id = t.workspace_id AND i.bidx = t.{ident(s)})" for s in subject]
    selects = []
    for c, plain in decl.blind_indexes.items():
        kind = decl.kind_of(plain)
        if c not in decl.identity_keys or kind not in kinds:
            continue
        where = [f"t.{ident(c)} IS NOT NULL", *(f"t.{ident(c)} IS DISTINCT FROM t.{ident(s)}" for s in subject),
                 "g.mentions", f"g.kind = {literal(kind)}", *not_owned,
                 *([] if c in verified else [_verified_null(decl)])]
        selects.append(f"SELECT t.rowid AS rid, g.request_id FROM {qualified(table)} t JOIN {TARGETS} g "
                       f"ON t.workspace_id = g.workspace_id AND t.{ident(c)} = g.bidx WHERE {' AND '.join(where)}")
    return selects


def _seen_table(table: str) -> str:
    """The temp table of the distinct combinations of `table`'s rows of stitched requesters (`_stitched`)."""
    return "dsr_seen_" + table.replace(".", "__")


def _stitched(con: duckdb.DuckDBPyConnection, table: str,
              decl: PersonalDataDeclaration) -> tuple[str | None, str | None]:
    """The SELECT of (request_id, workspace_id, bidx, given) of the tracker identifiers on the requester's own
    rows (owned rows of a stitched target); and the SELECT of the candidates (columns as `dsr_candidates`)
    whose identifier is also on a row carrying a verified identity whose subject is not the requester:
    contested.

    The requesters' rows are read once: one pass keeps the rows whose subject key holds a stitched target's
    blind index (a semi-join on it alone) and reduces them to their distinct (workspace, subject, trackers,
    verified or not) in a temp table; a batch's people have hundreds of thousands of rows but only tens of
    thousands of such combinations. The candidates come from those combinations, and so does the contest
    among the requesters' own rows; the contest's pass over the table then leaves the requesters' rows out
    (the same semi-join, negated) and keeps only other verified rows that carry a candidate."""
    trackers = decl.keys_of_kinds(TRACKER_KINDS)
    if not trackers or not decl.subject_keys:
        return None, None
    verified = decl.keys_of_kinds(VERIFIED_KINDS)
    carried = ", ".join(f"t.{ident(c)}" for c in trackers)
    carries = " OR ".join(f"t.{ident(v)} IS NOT NULL" for v in verified) or "false"
    stitched = f"SELECT bidx FROM {TARGETS} WHERE stitch"
    seen = _seen_table(table)
    con.execute(f"CREATE OR REPLACE TEMP TABLE {seen} AS " + " UNION ".join(
        f"SELECT DISTINCT {literal(s)} AS via, t.workspace_id, t.{ident(s)} AS subject, {carried}, "
        f"({carries}) AS verified FROM {qualified(table)} t WHERE t.{ident(s)} IN ({stitched})"
        for s in decl.subject_keys))
    unnested = f"unnest([{', '.join(ident(c) for c in trackers)}]) AS bidx"
    found = (f"SELECT g.request_id, g.workspace_id, x.bidx, g.bidx AS given FROM (SELECT DISTINCT workspace_id, "
             f"subject, {unnested} FROM {seen}) x JOIN {TARGETS} g ON g.workspace_id = x.workspace_id "
             f"AND g.bidx = x.subject WHERE g.stitch AND x.bidx IS NOT NULL")
    contested = None
    if verified and decl.subject_ref:
        holds = " OR ".join(f"t.{ident(c)} IN (SELECT bidx FROM dsr_candidates)" for c in trackers)
        subject = ident(decl.subject_ref)
        evidence = (f"SELECT workspace_id, subject, {carried} FROM {seen} t WHERE via = {literal(decl.subject_ref)} "
                    f"AND verified UNION SELECT DISTINCT t.workspace_id, t.{subject} AS subject, {carried} "
                    f"FROM {qualified(table)} t WHERE ({carries}) AND ({holds}) "
                    f"AND (t.{subject} IS NULL OR t.{subject} NOT IN ({stitched}))")
        contested = (f"SELECT DISTINCT c.* FROM dsr_candidates c JOIN (SELECT workspace_id, subject, {unnested} "
                     f"FROM ({evidence})) x ON x.workspace_id = c.workspace_id AND x.bidx = c.bidx "
                     f"AND x.subject IS DISTINCT FROM c.given")
    return found, contested


def find_rows(con: duckdb.DuckDBPyConnection, tables: dict[str, PersonalDataDeclaration]) -> None:
    """Fill one hits table per searchable table from TARGETS (stitching into IDENTITIES), one query each: the
    request's own rows (one equi-join per subject key) and, apart, the few rows that only mention an erased
    identifier, so a single person's search stays as cheap as a batch's and no step deduplicates the rows
    a batch finds."""
    con.execute(f"CREATE OR REPLACE TEMP TABLE {IDENTITIES} AS SELECT DISTINCT request_id, workspace_id, bidx "
                f"FROM {TARGETS}")
    candidates, contested = [], []
    for table, decl in tables.items():
        found, claimed = _stitched(con, table, decl)
        if found:
            candidates.append(found)
        if claimed:
            contested.append(claimed)
    if candidates:
        con.execute(f"CREATE OR REPLACE TEMP TABLE dsr_candidates AS SELECT DISTINCT * FROM ({' UNION '.join(candidates)})")
        contested_sql = " UNION ".join(contested) or "SELECT * FROM dsr_candidates WHERE false"
        con.execute(f"INSERT INTO {IDENTITIES} SELECT request_id, workspace_id, bidx FROM "
                    f"(SELECT * FROM dsr_candidates EXCEPT ({contested_sql})) EXCEPT SELECT * FROM {IDENTITIES}")
        con.execute("DROP TABLE dsr_candidates")
    for table in tables:
        con.execute(f"DROP TABLE IF EXISTS {_seen_table(table)}")
    kinds = {kind for (kind,) in con.execute(f"SELECT DISTINCT kind FROM {TARGETS} WHERE mentions").fetchall()}
    for table, decl in tables.items():
        # Owned rows are distinct per request (IDENTITIES is, and a key column holds one value per row) unless
        # a table has several subject keys; mentions exclude owned rows, so only they are deduplicated.
        owned = " UNION ".join(_owned(table, decl, IDENTITIES))
        mentions = _mentions(table, decl, kinds)
        parts = [owned] if owned else []
        if mentions:
            parts.append(f"SELECT DISTINCT * FROM ({' UNION '.join(mentions)})")
        found = " UNION ALL ".join(parts) or "SELECT NULL::BIGINT AS rid, NULL::VARCHAR AS request_id WHERE false"
        con.execute(f"CREATE OR REPLACE TEMP TABLE {hits_table(table)} AS {found}")
