"""Processing data-subject requests: access, correction, erasure and consent, all pending ones in one batch.

Everything works from the stored declarations (`x-data-category`, blind indexes, subject references), so a
new source's tables are searched, exported, corrected and erased without code here. People are found by
blind index (`pipelines.privacy.subjects`), never by decrypting tables. Order within a batch: consent,
corrections, access exports, then erasures (an erasure also removes earlier exports of the person).

Erasure is ordered so that a crash at any point is finished by the next run: keys are destroyed first
(after that the stored ciphertext is unreadable whatever happens; with the landing zone locked, so no sweep
archives the person's lines under fresh keys before the scrub), then landed raw files are scrubbed, while
the rows are deleted in one transaction that commits only after both; then the request is closed.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
from collections import Counter, defaultdict
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import duckdb
import pyarrow as pa
from dlt.common.schema.typing import TTableSchemaColumns

from pipelines.catalog import LANDING_ZONES
from pipelines.phones import PHONE_KIND, canonical_phone, canonical_phones, warehouse_regions
from pipelines.privacy.audit import AuditLog, Entry
from pipelines.privacy.categories import BLIND_INDEX_HINT, CATEGORY_HINT, declaration, stored_declarations
from pipelines.privacy.consent import DATASET as CONSENT_DATASET, TABLE as CONSENT_TABLE, ensure_consent_table
from pipelines.privacy.keys import destroy_unreferenced_subjects
from pipelines.privacy.protect import value_context
from pipelines.privacy.requests import (
    Closing, Inbox, RequestError, export_file, normalise_identities, normalise_identity, remove_export, request_from_row,
    shown, validate,
)
from pipelines.privacy.scrub import ScrubReport, scrub_landing
from pipelines.privacy.suppression import suppress
from pipelines.privacy.subjects import (
    IDENTITIES, REQUEST_KINDS, TARGETS, connection_tables, find_connection_rows, find_rows, hits_table, is_verified,
    request_kind, searchable_tables,
)
from pipelines.sql import ident, literal, qualified
from pipelines.workspaces import UNATTRIBUTED_WORKSPACE

ACTOR = "privacy.data_subject_requests"
# An access export holds the person's data in the clear: it is deleted this many days after it was written.
EXPORT_KEEP_DAYS = 30
_ORDER = {"consent": 0, "correction": 1, "access": 2, "erasure": 3}


@dataclass
class Outcome:
    request_id: str
    request_type: str
    status: str
    detail: str
    tables: dict[str, int] = field(default_factory=dict)
    export_path: str | None = None


@dataclass
class BatchReport:
    """Counts of one batch (Dagster metadata); per-request detail lives in the inbox and the audit log."""

    outcomes: list[Outcome] = field(default_factory=list)
    rows_by_table: dict[str, int] = field(default_factory=dict)
    keys_destroyed: int = 0
    landing_lines_removed: int = 0
    landing_files_rewritten: int = 0
    exports_removed: int = 0

    def count(self, status: str) -> int:
        return sum(1 for o in self.outcomes if o.status == status)


def process_pending(
    con: duckdb.DuckDBPyConnection,
    cipher,
    inbox: Inbox,
    audit: AuditLog,
    *,
    exports_dir: Path,
    landing_urls: dict[str, str],
    derived_tables: dict[str, TTableSchemaColumns] | None = None,
    now: dt.datetime | None = None,
    publish: Callable[[], None] | None = None,
    persist: Callable[[], object] | None = None,
) -> BatchReport:
    """Process every received request of `inbox` against the warehouse behind `con` (read-write).

    `derived_tables` declares tables built from the loaded ones (the SQL models) that hold pseudonymous
    keys of people (`x-pseudonym` columns): erasure deletes their rows and access exports them too.
    `publish` refreshes copies made of them (the analysts' snapshot): it runs after an erasure's rows are
    deleted and before its request is closed, so a run killed in between leaves the request open and the
    rerun publishes again. `persist` stores the changes made through `con` where they are not stored as they are
    made (the lakehouse's working copy): it runs after each kind's changes and before its requests are closed, so
    no request is recorded done while its changes are only in memory."""
    now = now or dt.datetime.now(dt.timezone.utc)
    report = BatchReport()
    expired = inbox.exports_before(now - dt.timedelta(days=EXPORT_KEEP_DAYS))
    for request_id in expired:
        report.exports_removed += remove_export(exports_dir, request_id)
    inbox.forget_exports(expired, f"deleted after {EXPORT_KEEP_DAYS} days")
    audit.append_many([Entry(actor=ACTOR, action="dsr.export_expired", request_id=r) for r in expired])
    tables = {**stored_declarations(con), **(derived_tables or {})}
    accepted: list[dict[str, Any]] = []
    rejected: list[tuple[dict[str, Any], str]] = []
    pending = inbox.pending()
    # every workspace the batch names, looked up at once (a batch of 1,000 erasures names hundreds)
    held = cipher.held_workspaces({r["workspace_id"] for r in pending if isinstance(r["workspace_id"], str)
                                   and r["workspace_id"]})
    for row in pending:
        problem = _problem(row, held.__contains__, tables)
        if problem:
            rejected.append((row, problem))
        else:
            accepted.append(row)
    inbox.finish_many([Closing(row["request_id"], "rejected", problem) for row, problem in rejected], now=now)
    shown_rejected = [(shown(row), problem) for row, problem in rejected]  # the app may have written anything
    audit.append_many([Entry(actor=ACTOR, action=f"dsr.{safe['request_type']}.rejected", request_id=safe["request_id"],
                             workspace_id=safe["workspace_id"], counts={"reason": problem})
                       for safe, problem in shown_rejected])
    report.outcomes.extend(Outcome(safe["request_id"], safe["request_type"], "rejected", problem)
                           for safe, problem in shown_rejected)
    if not accepted:
        return report
    _seal(inbox, cipher, accepted, warehouse_regions(con))
    con.execute("SET TimeZone = 'UTC'")
    _fill_targets(con, accepted)
    searchable = searchable_tables(con, tables)
    find_rows(con, searchable)
    per_request = _rows_per_request(con, searchable)
    for row in sorted(accepted, key=lambda r: _ORDER[r["request_type"]]):
        rid, kind = row["request_id"], row["request_type"]
        outcome = Outcome(rid, kind, "completed", "", dict(per_request.get(rid, {})))
        report.outcomes.append(outcome)
    handlers = {"consent": _consent, "correction": _correct, "access": _export, "erasure": _erase}
    by_id = {r["request_id"]: r for r in accepted}
    for kind in sorted(handlers, key=_ORDER.get):
        batch = [o for o in report.outcomes if o.request_type == kind and o.status == "completed"]
        if not batch:
            continue
        handlers[kind](con, cipher, inbox, by_id, batch, tables, searchable, report,
                       exports_dir=exports_dir, landing_urls=landing_urls, now=now)
        if persist:
            persist()
        if kind == "erasure" and publish:
            publish()
        # closed kind by kind (an erasure then sees this batch's exports too), in one inbox transaction and
        # one audit write per kind
        inbox.finish_many([Closing(o.request_id, "completed", o.detail, o.export_path) for o in batch], now=now)
        audit.append_many([Entry(actor=ACTOR, action=f"dsr.{kind}", request_id=o.request_id,
                                 workspace_id=by_id[o.request_id]["workspace_id"], tables=o.tables,
                                 counts={"rows": sum(o.tables.values())}) for o in batch])
        for outcome in batch:
            for table, count in outcome.tables.items():
                report.rows_by_table[table] = report.rows_by_table.get(table, 0) + count
    for table in searchable:
        con.execute(f"DROP TABLE IF EXISTS {hits_table(table)}")
    return report


# -- validation ----------------------------------------------------------------------------------------


def _problem(row: dict[str, Any], has_workspace: Callable[[str], bool], tables) -> str | None:
    """Why a request cannot be processed (a message without personal data), or None."""
    request = request_from_row(row)
    try:  # sealed: a run stopped after indexing the identity; the plaintext is gone already
        validate(request, identity_sealed=row.get("identity_bidx") is not None and not row.get("identity_value"))
    except RequestError as exc:
        return str(exc)
    if not has_workspace(request.workspace_id):
        return "unknown workspace: no data is held for this workspace id"
    if request.request_type == "correction":
        held = {col.get(CATEGORY_HINT) for cols in tables.values() for col in cols.values()}
        if request.field not in held:
            return "field is not a data category held in any table"
    return None


def _seal(inbox: Inbox, cipher, rows: list[dict[str, Any]], regions: dict[str, str]) -> None:
    """Blind-index each request's identity under its kind (with its workspace's key and the unattributed key)
    and clear its plaintext from the inbox. A phone is taken in the form sources store (E.164 read in the
    workspace's region), however the request typed it."""
    fresh = [r for r in rows if r.get("identity_value")]
    if not fresh:
        return
    for kind in {request_kind(r["identity_kind"]) for r in fresh}:  # one keyring call per kind, not per request
        group = [r for r in fresh if request_kind(r["identity_kind"]) == kind]
        values = [normalise_identity(r["identity_kind"], r["identity_value"]) for r in group]
        if kind == PHONE_KIND:
            values = [canonical_phone(v, regions.get(r["workspace_id"])) for r, v in zip(group, values)]
        own = cipher.blind_index_many([r["workspace_id"] for r in group], values, kind=kind).to_pylist()
        unattributed = cipher.blind_index_many([UNATTRIBUTED_WORKSPACE] * len(group), values, kind=kind).to_pylist()
        for row, bidx, other in zip(group, own, unattributed):
            row["identity_bidx"], row["unattributed_bidx"] = bidx, other
    inbox.seal({r["request_id"]: (r["identity_bidx"], r["unattributed_bidx"]) for r in fresh})


def _fill_targets(con: duckdb.DuckDBPyConnection, accepted: list[dict[str, Any]]) -> None:
    """TARGETS: each request's identifier in its workspace (stitched when it is a verified identity); for an
    erasure also under `_unattributed` (lines without a proven workspace: erased, never exported)."""
    erasures = [r for r in accepted if r["request_type"] == "erasure"]
    targets = pa.table({  # noqa: F841 - read by DuckDB's replacement scan
        "request_id": [r["request_id"] for r in [*accepted, *erasures]],
        "workspace_id": [r["workspace_id"] for r in accepted] + [UNATTRIBUTED_WORKSPACE] * len(erasures),
        "bidx": pa.array([r["identity_bidx"] for r in accepted] + [r["unattributed_bidx"] for r in erasures],
                         pa.binary()),
        "kind": [request_kind(r["identity_kind"]) for r in [*accepted, *erasures]],
        "stitch": [is_verified(r["identity_kind"]) for r in accepted] + [False] * len(erasures),
        "mentions": [r["request_type"] == "erasure" for r in [*accepted, *erasures]],
    })
    con.execute(f"CREATE OR REPLACE TEMP TABLE {TARGETS} AS SELECT * FROM targets")


def _rows_per_request(con, searchable) -> dict[str, dict[str, int]]:
    found: dict[str, dict[str, int]] = defaultdict(dict)
    for table in searchable:
        for rid, rows in con.execute(f"SELECT request_id, count(*) FROM {hits_table(table)} GROUP BY 1").fetchall():
            found[rid][table] = rows
    return found


def _in_list(request_ids: list[str]) -> str:
    return ", ".join(literal(r) for r in request_ids)


def _of_requests(request_ids: list[str], accepted: dict[str, Any]) -> str:
    """The WHERE clause keeping the rows of `request_ids` in a table of the batch's requests (IDENTITIES, a
    hits table): none when they are every accepted request, as in a batch of erasures only, so a large batch
    is not filtered row by row through a list of its own ids."""
    return "" if set(request_ids) == set(accepted) else f"WHERE request_id IN ({_in_list(request_ids)})"


def _hits_of(table: str, request_ids: list[str]) -> str:
    return f"SELECT * FROM {hits_table(table)} WHERE request_id IN ({_in_list(request_ids)})"


# -- consent -------------------------------------------------------------------------------------------


def _consent(con, cipher, inbox, rows, batch, tables, searchable, report, *, now, **_) -> None:
    """Record each purpose's choice for every identifier of the person; an opt-out also clears the
    matching `consent_<purpose>` flag of rows already held, so exports filtering on it obey at once."""
    ensure_consent_table(con)
    choices = [(o.request_id, purpose, allowed)
               for o in batch for purpose, allowed in json.loads(rows[o.request_id]["purposes"]).items()]
    choice_table = pa.table({"request_id": [c[0] for c in choices], "purpose": [c[1] for c in choices],
                             "allowed": [c[2] for c in choices]})
    con.register("choices", choice_table)
    con.execute(
        f"INSERT INTO {CONSENT_DATASET}.{CONSENT_TABLE} SELECT DISTINCT i.workspace_id, i.bidx, c.purpose, c.allowed, "
        f"c.request_id, ?::TIMESTAMPTZ FROM {IDENTITIES} i JOIN choices c USING (request_id)",
        [now],
    )
    for table in searchable:
        for purpose in {c[1] for c in choices if not c[2]}:
            column = f"consent_{purpose}"
            if column not in tables[table]:
                continue
            refused = [c[0] for c in choices if c[1] == purpose and not c[2]]
            con.execute(f"UPDATE {qualified(table)} SET {ident(column)} = false WHERE rowid IN "
                        f"(SELECT rid FROM ({_hits_of(table, refused)}))")
    con.unregister("choices")
    for outcome in batch:
        outcome.detail = "consent recorded for " + ", ".join(
            f"{p}={'allowed' if a else 'refused'}" for rid, p, a in choices if rid == outcome.request_id)


# -- correction ----------------------------------------------------------------------------------------


def _correct(con, cipher, inbox, rows, batch, tables, searchable, report, **_) -> None:
    """Rewrite the corrected field wherever the person's rows hold it: new ciphertext under the same subject
    key, and every blind index of that field recomputed."""
    for outcome in batch:
        outcome.tables = {}
    regions = warehouse_regions(con)
    for category in {rows[o.request_id]["field"] for o in batch}:
        requests = [o for o in batch if rows[o.request_id]["field"] == category]
        names = {name for cols in tables.values() for name, col in cols.items() if col.get(CATEGORY_HINT) == category}
        for table in searchable:
            columns = tables[table]
            targets = [c for c in columns if c in names and columns[c].get(CATEGORY_HINT) == category]
            indexes = [c for c, col in columns.items() if col.get(BLIND_INDEX_HINT) in names]
            if not targets and not indexes:
                continue
            subject = declaration(columns).subject_ref
            ref = f"t.{ident(subject)}" if subject else "NULL::BLOB"
            hits = con.sql(
                f"SELECT h.rid, h.request_id, t.workspace_id, {ref} AS subject_ref "
                f"FROM ({_hits_of(table, [o.request_id for o in requests])}) h "
                f"JOIN {qualified(table)} t ON t.rowid = h.rid"
            ).to_arrow_table()
            if hits.num_rows == 0:
                continue
            new = _as_stored(category, pa.array([rows[r]["new_value"].strip() for r in hits.column("request_id").to_pylist()],
                                                pa.string()), hits.column("workspace_id"), regions)
            update = {"rid": hits.column("rid")}
            for column in targets:
                update[column] = cipher.encrypt_with_refs(hits.column("workspace_id"), hits.column("subject_ref"),
                                                          new, value_context(table, column))
            for column in indexes:
                update[column] = cipher.blind_index_many(hits.column("workspace_id"), new,
                                                         kind=declaration(columns).kind_of(columns[column][BLIND_INDEX_HINT]))
            corrections = pa.table(update)  # noqa: F841 - read by DuckDB's replacement scan
            sets = ", ".join(f"{ident(c)} = corrections.{ident(c)}" for c in [*targets, *indexes])
            con.execute(f"UPDATE {qualified(table)} SET {sets} FROM corrections WHERE {qualified(table)}.rowid = corrections.rid")
            for rid, count in Counter(hits.column("request_id").to_pylist()).items():
                outcome = next(o for o in requests if o.request_id == rid)
                outcome.tables[table] = count
    for outcome in batch:
        outcome.detail = f"corrected {rows[outcome.request_id]['field']} in {sum(outcome.tables.values())} rows"


def _as_stored(category: str, values: pa.Array, workspace_ids: pa.ChunkedArray, regions: dict[str, str]) -> pa.Array:
    """Corrected values of an identifier in the form sources store it, so later requests find them: an e-mail
    normalised as requests are, a phone in E.164 read in its row's workspace region."""
    kind = next((k for k, c in REQUEST_KINDS.items() if c == category), None)
    if kind is not None:
        values = normalise_identities(kind, values)
    if category == PHONE_KIND:
        values = canonical_phones(workspace_ids.combine_chunks(), values, regions)
    return values


# -- access --------------------------------------------------------------------------------------------


def _export(con, cipher, inbox, rows, batch, tables, searchable, report, *, exports_dir, now, **_) -> None:
    """Write one JSON file per request with every row held about the person, personal columns decrypted."""
    documents = {o.request_id: {"request_id": o.request_id, "workspace_id": rows[o.request_id]["workspace_id"],
                                "generated_at": now.isoformat(), "tables": {}} for o in batch}
    for table in searchable:
        columns = tables[table]
        decl = declaration(columns)
        hidden = set(decl.keys)
        data = con.sql(
            f"SELECT h.request_id AS _request_id, t.* FROM ({_hits_of(table, list(documents))}) h "
            f"JOIN {qualified(table)} t ON t.rowid = h.rid ORDER BY h.request_id, h.rid"
        ).to_arrow_table()
        if data.num_rows == 0:
            continue
        refs = data.column(decl.subject_ref) if decl.subject_ref else None
        for column in decl.encrypted:
            if column in data.column_names:
                plain = cipher.decrypt_many(data.column("workspace_id"), refs, data.column(column),
                                            value_context(table, column))
                data = data.set_column(data.column_names.index(column), column, plain)
        keep = [c for c in data.column_names if c not in hidden and not c.startswith("_dlt")]
        for record in data.select(keep).to_pylist():
            rid = record.pop("_request_id")
            documents[rid]["tables"].setdefault(table, []).append(record)
    for outcome in batch:
        path = export_file(exports_dir, outcome.request_id)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(documents[outcome.request_id], handle, default=str, indent=1, sort_keys=True)
        outcome.export_path = str(path)
        outcome.detail = f"exported {sum(outcome.tables.values())} rows from {len(outcome.tables)} tables"


# -- erasure -------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _written_without_compaction(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """Commits inside write their changes straight into the database file (a checkpoint at each commit, not
    the write-ahead log: a batch's deletions are written and synced once, not logged first and copied into
    the file after), and the block ends with a checkpoint; none compacts the thinned row groups (DuckDB's
    vacuum), which is left to the next checkpoint that writes those tables (the next load).

    Compacting rewrites every row group a batch deleted from: for a batch reaching a third of the events
    that is most of the table, which would make a batch cost many times a single erasure. It adds no
    erasure: the blocks it frees keep their old bytes until reused, just as deleted rows do in place;
    what makes a person unreadable is the destruction of their keys, done first."""
    vacuum, threshold = con.execute(
        "SELECT current_setting('max_vacuum_tasks'), current_setting('checkpoint_threshold')").fetchall()[0]
    con.execute("SET max_vacuum_tasks = 0")
    con.execute("SET checkpoint_threshold = '0 bytes'")
    try:
        yield
        con.execute("CHECKPOINT")  # whatever a commit could not checkpoint (another connection was writing)
    finally:
        con.execute(f"SET checkpoint_threshold = {literal(threshold)}")
        con.execute(f"SET max_vacuum_tasks = {int(vacuum)}")


def _delete_hits(con: duckdb.DuckDBPyConnection, table: str, rids_sql: str) -> None:
    """Delete the rows of `table` whose rowid `rids_sql` selects (a row listed twice is deleted once).

    A join (`USING`) rather than `rowid IN (...)`: DuckDB runs the IN as a mark join whose marks are then
    filtered, about twice the CPU time of the plain join when a batch deletes a third of a table."""
    con.execute(f"DELETE FROM {qualified(table)} USING ({rids_sql}) AS doomed "
                f"WHERE {qualified(table)}.rowid = doomed.rid")


def _count_connection_rows(con, by_connection: dict[str, str], batch: list[Outcome]) -> None:
    """A disconnected account's rows per table, on its request's outcome (for the audit entry)."""
    for table in by_connection:
        for rid, count in con.execute(f"SELECT request_id, count(*) FROM {hits_table(table, 'connection')} "
                                      "GROUP BY 1").fetchall():
            outcome = next(o for o in batch if o.request_id == rid)
            outcome.tables[table] = outcome.tables.get(table, 0) + count


def _shred(cipher, identities: pa.Table, landing_urls: dict[str, str]) -> list[ScrubReport]:
    """Destroy the keys of `identities` and scrub their lines from the landed files of every zone given (the
    first zone's scrub destroys the keys, holding its lock: `scrub_landing`); one report per zone, or one of
    the keys alone when no zone is given."""
    zones = [zone for zone in LANDING_ZONES if zone.name in landing_urls]
    if not zones:
        return [ScrubReport(keys_destroyed=cipher.destroy_subjects_many(identities.column("workspace_id"),
                                                                        identities.column("bidx")))]
    return [scrub_landing(zone, landing_urls[zone.name], identities, cipher) for zone in zones]


def _erase(con, cipher, inbox, rows, batch, tables, searchable, report, *, landing_urls, exports_dir, now,
           **_) -> None:
    """Destroy the people's keys and scrub landed files while their rows are deleted, remove earlier exports,
    and commit the deletion once the keys are gone.

    The keyring (SQLite) and the landed files are apart from the warehouse, so a thread shreds while DuckDB
    deletes: a batch's two largest costs overlap on two cores. The rows' transaction commits only after the
    keys are destroyed, so a crash anywhere before leaves every row and the rerun finds the same people.

    A request naming a `connection` (a disconnected provider account) deletes every row carrying that
    connection id in a column declared `x-connection`; the keys of the people in them are destroyed after,
    once no other row (another account of the workspace) still needs them."""
    mine = _of_requests([o.request_id for o in batch], rows)
    # Only the keys of the requests' own identities (the identifier given and those stitched to it): a row
    # reached because it merely holds the identifier is deleted, but its subject's key is someone else's.
    # In key order: the keyring deletes them walking its index once.
    identities = con.sql(f"SELECT DISTINCT workspace_id, bidx FROM {IDENTITIES} {mine} "
                         "ORDER BY workspace_id, bidx").to_arrow_table()
    # The people stay erased (a disconnected account may be connected again): their identities are suppressed.
    people = [o.request_id for o in batch if rows[o.request_id]["identity_kind"] != "connection"]
    suppressed = (f"SELECT request_id, workspace_id, bidx FROM {IDENTITIES} {_of_requests(people, rows)}"
                  if people else None)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="erasure-shred") as pool:
        shredding = pool.submit(_shred, cipher, identities, landing_urls)
        try:
            earlier = inbox.earlier_exports(identities)
            for request_id in earlier:
                report.exports_removed += remove_export(exports_dir, request_id)
            inbox.forget_exports(earlier, "removed by a later erasure")
            _delete_rows(con, cipher, rows, batch, tables, searchable, mine, suppressed, shredding, report, now)
        finally:
            shredding.cancel()  # not started yet: never starts; running: the pool waits for it to end
    for outcome in batch:
        outcome.detail = f"erased {sum(outcome.tables.values())} rows from {len(outcome.tables)} tables"


def _delete_rows(con, cipher, rows, batch, tables, searchable, mine: str, suppressed: str | None,
                 shredding: Future, report: BatchReport, now: dt.datetime) -> None:
    """Delete the batch's rows and add the `suppressed` identities to the suppression list in one transaction
    that commits once `shredding` (the keys' destruction and the scrub) is done; then the keys of disconnected
    accounts' people that no row needs any more."""
    by_connection = connection_tables(con, tables)
    disconnected = [o for o in batch if rows[o.request_id]["identity_kind"] == "connection"]
    if disconnected:  # the people of a disconnected account: candidates for key destruction once rows are gone
        find_connection_rows(con, cipher, by_connection, [o.request_id for o in disconnected])
        _count_connection_rows(con, by_connection, disconnected)
        con.execute("CREATE OR REPLACE TEMP TABLE dsr_connection_subjects (workspace_id VARCHAR, subject_ref BLOB)")
        for table, column in by_connection.items():
            subject = declaration(tables[table]).subject_ref
            if subject:
                con.execute(f"INSERT INTO dsr_connection_subjects SELECT DISTINCT t.workspace_id, t.{ident(subject)} "
                            f"FROM {qualified(table)} t JOIN {hits_table(table, 'connection')} h ON t.rowid = h.rid "
                            f"WHERE t.{ident(subject)} IS NOT NULL").fetchall()
    with _written_without_compaction(con):
        con.execute("BEGIN")
        try:
            for table in searchable:
                _delete_hits(con, table, f"SELECT rid FROM {hits_table(table)} {mine}")
            for table in by_connection if disconnected else ():
                _delete_hits(con, table, f"SELECT rid FROM {hits_table(table, 'connection')}")
            if suppressed:
                suppress(con, suppressed, now)
            scrubbed = shredding.result()
        except BaseException:
            con.execute("ROLLBACK")
            raise
        con.execute("COMMIT")
        for zone in scrubbed:
            report.keys_destroyed += zone.keys_destroyed
            report.landing_lines_removed += zone.lines_removed
            report.landing_files_rewritten += zone.files_rewritten
        if disconnected:
            report.keys_destroyed += destroy_unreferenced_subjects(con, "dsr_connection_subjects", tables, cipher)
            for table in by_connection:
                con.execute(f"DROP TABLE IF EXISTS {hits_table(table, 'connection')}")
            con.execute("DROP TABLE dsr_connection_subjects")


def foreign_rows_in_exports(inbox: Inbox, exports_dir: Path) -> tuple[int, dict[str, int]]:
    """(exports read, rows of another workspace per request id) over every access export still on disk: an
    export holds only rows of the workspace that requested it (the policy's "visible only within your
    workspace"). A row without a workspace counts as foreign."""
    read, foreign = 0, {}
    for row in inbox.all():
        path = export_file(exports_dir, row["request_id"]) if row["export_path"] else None
        if path is None or not path.exists():
            continue
        read += 1
        document = json.loads(path.read_text(encoding="utf-8"))
        owners = [document.get("workspace_id"), *(r.get("workspace_id") for records in document["tables"].values()
                                                  for r in records)]
        if count := sum(owner != row["workspace_id"] for owner in owners):
            foreign[row["request_id"]] = count
    return read, foreign
