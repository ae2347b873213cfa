"""The DuckDB work database of one ingestion run: parse, validate, deduplicate, enrich, protect.

A run goes slice by slice (a slice is a group of whole files of bounded size), and within a slice lines are
parsed and validated chunk by chunk, so a landing day of any size passes through a bounded amount of memory
and disk. Everything else is set-based SQL over the slice: duplicate detection against earlier slices (the
only table kept across slices holds the event ids already accepted), the warehouse and the slice itself,
enrichment of distinct user agents and IPs, encryption of distinct personal values. The work folder holds
plaintext while a run is active, so it is wiped at the start and end of every run.
"""

from __future__ import annotations

import shutil
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Collection, Iterator

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from pipelines.memory import release_free_memory
from pipelines.privacy.consent import withdrawn_sql
from pipelines.privacy.categories import CATEGORY_HINT
from pipelines.privacy.protect import FieldCipher, blind_index_by_kind, protect
from pipelines.privacy.subjects import normalise_stored
from pipelines.sql import ident, literal, loose_json_field
from pipelines.warehouse import table_exists
from pipelines.usage_events.contract import CONTRACT_VERSION, CompiledContract
from pipelines.usage_events.enrich import ip_networks, ipv4_network_sql, parse_user_agents
from pipelines.usage_events.landing import FileChanged, FileLines, LandingFile, SkippedFile, chunk_files, read_lines
from pipelines.usage_events.settings import (
    DATASET_NAME,
    EARLIEST_EVENT,
    EVENT_COLUMNS,
    EVENTS_TABLE,
    LANDING_SUBJECT_FIELDS,
    LEDGER_TABLE,
    MAX_CLOCK_SKEW_DAYS,
    QUARANTINE_COLUMNS,
    QUARANTINE_TABLE,
    READ_CHUNK_BYTES,
    SLICE_LINES,
    STREAM_MEMORY_LIMIT,
    UNATTRIBUTED_WORKSPACE,
    WORK_MEMORY_LIMIT,
    YIELD_BATCH_ROWS,
)
from pipelines.usage_events.validation import validation_select

_URL_SCHEME = r"^[A-Za-z][A-Za-z0-9+.-]*://"


def _url_columns(column: str, prefix: str) -> str:
    """URL without query string and fragment (they can carry personal data), and its lower-cased host."""
    return (
        f"nullif(regexp_replace({column}, '[?#].*$', ''), '') AS {prefix}_url, "
        f"nullif(lower(regexp_extract({column}, '{_URL_SCHEME}([^/?#:@]*)', 1)), '') AS {prefix}_host"
    )


def _utm(column: str, name: str) -> str:
    """A utm_* parameter, percent-decoded; one whose escapes do not decode to UTF-8 (`%ff`) is kept as sent
    (DuckDB's url_decode would fail the whole statement, quoting the value)."""
    value = f"regexp_extract({column}, '[?&]utm_{name}=([^&#]*)', 1)"
    return f"nullif(coalesce(try(url_decode({value})), {value}), '') AS utm_{name}"


@dataclass
class LedgerIndex:
    """What the landing ledger says was loaded: the exactly-once check without reading a file (its relative
    path, size and modification time), and with it (its relative path and content hash)."""

    versions: set[tuple[str, int, float]] = field(default_factory=set)
    contents: set[tuple[str, str]] = field(default_factory=set)
    paths: set[str] = field(default_factory=set)
    legacy_urls: set[str] = field(default_factory=set)

    def loaded(self, f: LandingFile) -> bool:
        """Whether `f` is recorded as loaded, by what it is (ledger rows written before files were keyed by
        content are matched by URL)."""
        return (f.path, f.size, f.modified) in self.versions or f.url in self.legacy_urls


@dataclass
class SliceFiles:
    """What reading a slice's files found beside their lines."""

    skipped: list[SkippedFile] = field(default_factory=list)
    already_loaded: int = 0
    changed: list[str] = field(default_factory=list)
    lines: int = 0
    deferred: list[LandingFile] = field(default_factory=list)  # left for the next slice (SLICE_LINES reached)


class EventWork:
    """One run's work database. Use as a context manager: the folder is wiped on exit, crash or not."""

    def __init__(
        self, work_dir: Path, contract: CompiledContract, load_id: str, known_workspaces: Collection[str]
    ) -> None:
        self.load_id = load_id
        self.work_dir = work_dir / f"run-{uuid.uuid4().hex}"
        wipe_work_dir(work_dir)
        self.work_dir.mkdir(parents=True)
        self.con = duckdb.connect(config={"memory_limit": WORK_MEMORY_LIMIT, "temp_directory": str(self.work_dir)})
        self.con.execute("SET TimeZone = 'UTC'; SET preserve_insertion_order = false")
        self.con.execute("CREATE TABLE seen (event_id VARCHAR); "
                         "CREATE TABLE seen_bad (path VARCHAR, sha256 VARCHAR, line_key BLOB); "
                         "CREATE TABLE known_workspaces (workspace_id VARCHAR PRIMARY KEY)")
        workspaces = pa.table({"workspace_id": pa.array(sorted(known_workspaces), pa.string())})  # noqa: F841
        self.con.execute("INSERT INTO known_workspaces SELECT workspace_id FROM workspaces")
        self._parse_sql = validation_select(contract, "chunk", EARLIEST_EVENT, MAX_CLOCK_SKEW_DAYS, "known_workspaces")
        self._next_file_id = 0

    def __enter__(self) -> EventWork:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.con.close()
        shutil.rmtree(self.work_dir, ignore_errors=True)

    # -- reading ---------------------------------------------------------------------------------------
    def load_files(self, files: list[LandingFile], ledger: LedgerIndex) -> SliceFiles:
        """Start a slice: parse and validate every line of `files` into a fresh `parsed` table, one chunk of
        files at a time. Files must come in the run's order (day, path): the first copy of an event wins.

        A file that cannot be read, or changes while it is read, is left out (and reported) for a later run;
        one whose content the ledger already holds under its path is not read again."""
        self._drop_slice_tables()
        self._next_phase(WORK_MEMORY_LIMIT)
        self.con.execute(
            "CREATE OR REPLACE TABLE files (file_id INTEGER, url VARCHAR, path VARCHAR, received_date DATE, "
            "size_bytes BIGINT, modified_at DOUBLE, sha256 VARCHAR);"
            "CREATE OR REPLACE TABLE line_defects (file_id INTEGER, line_no BIGINT, raw VARCHAR, raw_bytes BIGINT)"
        )
        chunk = _lines_table([], [], [], [], [], [])  # noqa: F841 - read by DuckDB's replacement scan
        self.con.execute(f"CREATE OR REPLACE TABLE parsed AS {self._parse_sql} LIMIT 0")
        found = SliceFiles()
        groups = _read_ahead(chunk_files(files))
        for group in groups:
            stop = self._load_chunk(group, ledger, found)
            del group  # not held while the reader reads the next
            if stop is not None:  # the rest, and the group read ahead, are read again with the next slice
                groups.close()
                found.deferred = files[files.index(stop):]
                break
        self._normalise_identifiers("parsed", LANDING_SUBJECT_FIELDS)
        return found

    def _normalise_identifiers(self, table: str, columns: tuple[str, ...]) -> None:
        """Store each identifier column of `table` in the form requests look it up by (`normalise_stored` of
        the column's data category: `" u1"` is `"u1"`), so that an erasure, access or opt-out finds every row
        of its person whatever padding the tracker sent. One function for rows and requests: each distinct
        value passes through it once, and only rows whose value changes are rewritten. A value that
        normalises to nothing (only whitespace) names nobody and is stored as null."""
        for column in columns:
            values = self.con.sql(f"SELECT DISTINCT {ident(column)} AS v FROM {ident(table)} "
                                  f"WHERE {ident(column)} IS NOT NULL").to_arrow_table().column("v")
            forms = normalise_stored(EVENT_COLUMNS[column][CATEGORY_HINT], values)
            changed = pc.not_equal(forms, values)
            if not pc.any(changed).as_py():
                continue
            changes = pa.table({"v": values.filter(changed), "form": forms.filter(changed)})  # noqa: F841 - DuckDB scan
            self.con.execute(f"UPDATE {ident(table)} SET {ident(column)} = nullif(c.form, '') FROM changes c "
                             f"WHERE {ident(table)}.{ident(column)} = c.v")

    def _drop_slice_tables(self) -> None:
        """Free what the previous slice built (everything but the run's tables) before the next is read, so
        the new slice's parsing has the whole memory cap."""
        names = [r[0] for r in self.con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() "
            "AND table_name NOT IN ('seen', 'seen_bad', 'known_workspaces')"
        ).fetchall()]
        for name in names:
            self.con.execute(f"DROP TABLE {ident(name)}")

    def _load_chunk(self, group: list[tuple[LandingFile, FileLines | str]], ledger: LedgerIndex,
                    found: SliceFiles) -> LandingFile | None:
        """Add the group's lines to the slice; the first file left for the next slice once it holds
        SLICE_LINES lines (None: the whole group was taken)."""
        arrays: dict[str, list[pa.Array]] = {name: [] for name in _LINES_SCHEMA.names}
        defects: list[tuple[int, int, str, int]] = []
        rows: list[tuple] = []
        stop = None
        for landing_file, read in group:
            if found.lines and found.lines + (0 if isinstance(read, str) else len(read.lines)) > SLICE_LINES:
                stop = landing_file
                break
            if isinstance(read, str):
                found.skipped.append(SkippedFile(landing_file.path, read))
                continue
            if (landing_file.path, read.sha256) in ledger.contents:
                found.already_loaded += 1
                continue
            if landing_file.path in ledger.paths:
                found.changed.append(landing_file.path)
            file_id = self._next_file_id
            self._next_file_id += 1
            rows.append((file_id, landing_file.url, landing_file.path, landing_file.received_date, read.size,
                         landing_file.modified, read.sha256))
            n = len(read.lines)
            found.lines += n
            arrays["file_id"].append(pa.array([file_id] * n, pa.int32()))
            arrays["received_date"].append(pa.array([landing_file.received_date] * n, pa.date32()))
            arrays["line_no"].append(pa.array(range(1, n + 1), pa.int64()))
            arrays["line"].extend(read.lines.chunks)
            marks = [read.defects.get(i + 1) for i in range(n)] if read.defects else None
            arrays["defect"].append(pa.array([m and m.reason for m in marks], pa.string()) if marks else pa.nulls(n, pa.string()))
            arrays["defect_detail"].append(
                pa.array([m and m.detail for m in marks], pa.string()) if marks else pa.nulls(n, pa.string()))
            defects.extend((file_id, line_no, d.raw, d.size) for line_no, d in read.defects.items())
        if not rows:
            return stop
        file_rows = pa.table(dict(zip(  # noqa: F841 - read by DuckDB's replacement scan
            ("file_id", "url", "path", "received_date", "size_bytes", "modified_at", "sha256"), zip(*rows))))
        self.con.execute("INSERT INTO files SELECT * FROM file_rows")
        chunk = _lines_table(**arrays)  # noqa: F841 - read by DuckDB's replacement scan
        self.con.execute(f"INSERT INTO parsed {self._parse_sql}")
        if defects:
            rows_of_defects = pa.table({  # noqa: F841 - read by DuckDB's replacement scan
                "file_id": pa.array([d[0] for d in defects], pa.int32()),
                "line_no": pa.array([d[1] for d in defects], pa.int64()),
                "raw": pa.array([d[2] for d in defects], pa.string()),
                "raw_bytes": pa.array([d[3] for d in defects], pa.int64())})
            self.con.execute("INSERT INTO line_defects SELECT * FROM rows_of_defects")
        return stop

    # -- duplicates ------------------------------------------------------------------------------------
    def resolve_duplicates(self, warehouse_path: str | None, cipher: FieldCipher) -> None:
        """Mark each line of the slice loaded, duplicate or quarantined.

        The first copy of an event id in the run (by day, file, line) is kept unless the warehouse or an
        earlier slice already holds that id; every later copy is a duplicate. The warehouse is read through
        a read-only attach. Earlier ids are looked up by semi-joins with the slice's own ids (the smaller
        side, so DuckDB hashes those), which keeps memory bounded by the slice however large the
        warehouse and the run grow.

        An invalid line is a duplicate too when it was already quarantined from the same file: an earlier
        version under the same path (a file that grew or was scrubbed) or the same content under another path
        (a file landed again). Lines are compared by a keyed hash of their text and its occurrence number in
        the file (the second identical line of a file is not the first), never in the clear.
        """
        earlier = ["SELECT event_id FROM seen"]
        attached = self._attach_warehouse(warehouse_path)
        if attached and table_exists(self.con, DATASET_NAME, EVENTS_TABLE, "wh"):
            earlier.append(f"SELECT event_id FROM wh.{DATASET_NAME}.{EVENTS_TABLE}")
        known = " UNION ALL ".join(f"SELECT * FROM ({ids}) SEMI JOIN slice_ids USING (event_id)" for ids in earlier)
        self._line_keys(cipher)
        earlier_bad = ["SELECT path, sha256, line_key FROM seen_bad"]
        if attached and table_exists(self.con, DATASET_NAME, QUARANTINE_TABLE, "wh") and _has_column(
                self.con, QUARANTINE_TABLE, "line_key", "wh"):
            earlier_bad.append(
                f"SELECT l.file_path, l.content_sha256, q.line_key FROM wh.{DATASET_NAME}.{QUARANTINE_TABLE} q "
                f"JOIN wh.{DATASET_NAME}.{LEDGER_TABLE} l ON l.file_url = q.source_file AND l._dlt_load_id = q._dlt_load_id "
                "WHERE q.line_key IN (SELECT line_key FROM bad_keys)")
        self.con.execute(
            f"""
            CREATE OR REPLACE TABLE slice_ids AS SELECT DISTINCT event_id FROM parsed WHERE reason IS NULL;
            CREATE OR REPLACE TABLE known_ids AS SELECT DISTINCT event_id FROM ({known});
            CREATE OR REPLACE TABLE known_bad AS
            SELECT b.file_id, b.line_no FROM bad_keys b
            WHERE EXISTS (SELECT 1 FROM ({' UNION ALL '.join(earlier_bad)}) e(path, sha256, line_key)
                          WHERE e.line_key = b.line_key AND (e.path = b.path OR e.sha256 = b.sha256))
               OR EXISTS (SELECT 1 FROM bad_keys o
                          WHERE o.line_key = b.line_key AND o.sha256 = b.sha256 AND o.file_id < b.file_id);
            CREATE OR REPLACE TABLE status AS
            SELECT file_id, line_no,
                   CASE WHEN reason IS NOT NULL AND (file_id, line_no) IN (SELECT (file_id, line_no) FROM known_bad)
                          THEN 'duplicate'
                        WHEN reason IS NOT NULL THEN 'quarantined'
                        WHEN row_number() OVER (PARTITION BY event_id ORDER BY received_date, file_id, line_no) > 1
                          OR event_id IN (SELECT event_id FROM known_ids) THEN 'duplicate'
                        ELSE 'loaded' END AS status
            FROM parsed
            """
        )
        self.con.execute(
            "INSERT INTO seen SELECT event_id FROM parsed JOIN status USING (file_id, line_no) WHERE status = 'loaded';"
            "INSERT INTO seen_bad SELECT b.path, b.sha256, b.line_key FROM bad_keys b "
            "JOIN status USING (file_id, line_no) WHERE status = 'quarantined'"
        )
        self.con.execute(f"CREATE OR REPLACE TABLE withdrawn AS {withdrawn_sql(self.con, 'analytics', 'wh' if attached else None)}")
        if attached:
            self.con.execute("DETACH wh")

    def _line_keys(self, cipher: FieldCipher) -> None:
        """`bad_keys`: the slice's invalid lines with their file's path and hash and the line's key, a keyed
        hash (the keyring's blind index under the `_unattributed` workspace) of its occurrence number among
        identical lines of its file and its text. Hashed _KEYED_BATCH_LINES lines at a time: a slice of a
        million quarantined lines of a few hundred bytes held 1.6 GB when they were read out at once."""
        self.con.complete()  # the slice's INSERTs leave their row counts unread
        self.con.execute(
            """
            CREATE OR REPLACE TABLE bad_lines AS
            SELECT row_number() OVER (ORDER BY file_id, line_no) AS n, file_id, line_no, path, sha256,
                   row_number() OVER (PARTITION BY file_id, raw ORDER BY line_no)::VARCHAR || chr(31) || raw AS keyed
            FROM (SELECT p.file_id, p.line_no, f.path, f.sha256, coalesce(p.line, d.raw, '') AS raw
                  FROM parsed p JOIN files f USING (file_id) LEFT JOIN line_defects d USING (file_id, line_no)
                  WHERE p.reason IS NOT NULL);
            CREATE OR REPLACE TABLE bad_keys (file_id INTEGER, line_no BIGINT, path VARCHAR, sha256 VARCHAR, line_key BLOB)
            """
        ).fetchall()
        ((count,),) = self.con.execute("SELECT count(*) FROM bad_lines").fetchall()
        kind = QUARANTINE_COLUMNS["raw_line"]["x-data-category"]
        for first in range(1, count + 1, _KEYED_BATCH_LINES):
            bad = self.con.sql(f"SELECT * FROM bad_lines WHERE n >= {first} AND n < {first + _KEYED_BATCH_LINES}"
                               ).to_arrow_table()
            keys = cipher.blind_index_many(pa.array([UNATTRIBUTED_WORKSPACE] * bad.num_rows, pa.string()),
                                           bad.column("keyed"), kind=kind)
            keyed = bad.drop_columns(["n", "keyed"]).append_column("line_key", keys)  # noqa: F841 - DuckDB scan
            self.con.execute("INSERT INTO bad_keys SELECT * FROM keyed").fetchall()
        self.con.execute("DROP TABLE bad_lines")

    def ledger_index(self, warehouse_path: str | None) -> LedgerIndex:
        """The warehouse ledger's record of loaded files (see `ledger_index`)."""
        if not self._attach_warehouse(warehouse_path):
            return LedgerIndex()
        try:
            return ledger_index(self.con, "wh")
        finally:
            self.con.execute("DETACH wh")

    def _attach_warehouse(self, warehouse_path: str | None) -> bool:
        if not warehouse_path or not Path(warehouse_path).exists():
            return False
        self.con.execute("ATTACH ? AS wh (READ_ONLY)", [warehouse_path]).fetchall()
        return True

    # -- output ----------------------------------------------------------------------------------------
    def counts(self) -> dict[str, int]:
        """Lines read, events loaded, duplicates dropped and lines quarantined in this slice."""
        row = self.con.execute(
            "SELECT count(*), count(*) FILTER (status = 'loaded'), count(*) FILTER (status = 'duplicate'), "
            "count(*) FILTER (status = 'quarantined') FROM status"
        ).fetchone()
        return dict(zip(("lines", "events_loaded", "duplicates_dropped", "lines_quarantined"), row))

    def quarantine_reasons(self) -> dict[str, int]:
        """Quarantined lines per reason code (codes and field names only: no data)."""
        rows = self.con.execute(
            "SELECT reason, count(*) FROM parsed JOIN status USING (file_id, line_no) "
            "WHERE status = 'quarantined' GROUP BY reason ORDER BY reason"
        ).fetchall()
        return {reason: count for reason, count in rows}

    def quarantine_by_file(self) -> dict[str, dict[str, int]]:
        """Quarantined lines per file (relative path) and reason code."""
        by_file: dict[str, dict[str, int]] = {}
        for path, reason, count in self.con.execute(
            "SELECT f.path, p.reason, count(*) FROM parsed p JOIN status USING (file_id, line_no) JOIN files f "
            "USING (file_id) WHERE status = 'quarantined' GROUP BY ALL ORDER BY ALL"
        ).fetchall():
            by_file.setdefault(path, {})[reason] = count
        return by_file

    def ledger(self) -> pa.Table:
        """One row per file of this slice: what the exactly-once check records."""
        return self.con.sql(
            f"""
            SELECT f.url AS file_url, f.path AS file_path, f.received_date, f.size_bytes,
                   f.modified_at, f.sha256 AS content_sha256,
                   count(s.line_no) AS lines,
                   count(s.line_no) FILTER (s.status = 'loaded') AS events_loaded,
                   count(s.line_no) FILTER (s.status = 'duplicate') AS duplicates_dropped,
                   count(s.line_no) FILTER (s.status = 'quarantined') AS lines_quarantined,
                   {literal(self.load_id)} AS _dlt_load_id
            FROM files f LEFT JOIN status s USING (file_id)
            GROUP BY ALL ORDER BY f.path
            """
        ).to_arrow_table()

    def stage(self, cipher: FieldCipher) -> None:
        """Build the slice's plaintext rows, events and quarantine, then drop the parsed lines: protection
        and streaming then run with the slice held once, not twice (holding both made DuckDB spill, and every
        later statement paid for it), under the lower streaming cap."""
        self._next_phase(WORK_MEMORY_LIMIT)
        self._quarantine_plain()
        self._enrichment_tables()
        self._refused_rows(cipher)
        identifier = "CASE WHEN p.consent_analytics AND r.line_no IS NULL THEN p.{0} END AS {0}"
        self.con.execute(
            f"""
            CREATE OR REPLACE TABLE events_plain AS
            SELECT p.event_id, p.workspace_id, p.event_type, p.occurred_at, p.received_date,
                   {', '.join(identifier.format(c) for c in (*LANDING_SUBJECT_FIELDS, 'ip', 'user_agent'))},
                   ipn.ip_network, ipn.ip_version,
                   ua.browser_family, ua.browser_version, ua.os_family, ua.os_version, ua.device_family,
                   ua.device_class, ua.is_bot,
                   pu.page_url, pu.page_host, pu.page_path, ru.referrer_url, ru.referrer_host,
                   pu.utm_source, pu.utm_medium, pu.utm_campaign,
                   p.properties, p.consent_analytics AND r.line_no IS NULL AS consent_analytics, p.consent_ads,
                   f.url AS source_file, p.line_no AS source_line, '{CONTRACT_VERSION}' AS contract_version
            FROM parsed p
            JOIN status s USING (file_id, line_no)
            JOIN files f USING (file_id)
            LEFT JOIN ua ON ua.user_agent = p.user_agent
            LEFT JOIN ipn ON ipn.ip = p.ip
            LEFT JOIN refused_rows r USING (file_id, line_no)
            LEFT JOIN page_urls pu ON pu.url = p.url
            LEFT JOIN referrer_urls ru ON ru.referrer = p.referrer
            WHERE s.status = 'loaded'
            """
        )
        self.con.execute("DROP TABLE parsed")
        self._next_phase(STREAM_MEMORY_LIMIT)

    def _next_phase(self, limit: str) -> None:
        """Start a phase: hand the memory the last one freed back to the OS, and set DuckDB's cap for this
        one (the full work cap to parse and stage a slice, a lower one to protect and stream it)."""
        release_free_memory()
        self.con.execute(f"SET memory_limit = {literal(limit)}")

    def events(self, cipher: FieldCipher) -> Iterator[pa.RecordBatch]:
        """The slice's staged events (see `stage`) with personal data encrypted, in arrow batches."""
        yield from self._protected("events_plain", EVENT_COLUMNS, EVENTS_TABLE, cipher)

    def quarantine(self, cipher: FieldCipher) -> Iterator[pa.RecordBatch]:
        """The quarantined lines with their reason; the raw line itself is stored only encrypted."""
        yield from self._protected("quarantine_plain", QUARANTINE_COLUMNS, QUARANTINE_TABLE, cipher)

    def _quarantine_plain(self) -> None:
        """The quarantined lines, attributed to a workspace and a person where the line still says whose it is
        (only a workspace the platform knows: any other is `_unattributed`, so made-up ids make no keys)."""
        workspace = f"coalesce(p.workspace_id, {loose_json_field('p.line', 'workspace_id')})"
        self.con.execute(
            f"""
            CREATE OR REPLACE TABLE quarantine_plain AS
            SELECT f.url AS source_file, p.line_no AS source_line, p.received_date, p.reason, p.reason_detail,
                   CASE WHEN {workspace} IN (SELECT workspace_id FROM known_workspaces) THEN {workspace}
                        ELSE '{UNATTRIBUTED_WORKSPACE}' END
                     AS workspace_id,
                   coalesce(p.user_id, {loose_json_field('coalesce(p.line, d.raw)', 'user_id')}) AS user_id,
                   coalesce(p.anonymous_id, {loose_json_field('coalesce(p.line, d.raw)', 'anonymous_id')})
                     AS anonymous_id,
                   coalesce(p.line, d.raw, '') AS raw_line,
                   coalesce(d.raw_bytes, strlen(p.line)) AS raw_bytes,
                   b.line_key,
                   '{CONTRACT_VERSION}' AS contract_version
            FROM parsed p
            JOIN status s USING (file_id, line_no)
            JOIN files f USING (file_id)
            JOIN bad_keys b USING (file_id, line_no)
            LEFT JOIN line_defects d USING (file_id, line_no)
            WHERE s.status = 'quarantined'
            """
        )
        self._normalise_identifiers("quarantine_plain", ("user_id", "anonymous_id"))  # those read from broken lines

    def _refused_rows(self, cipher: FieldCipher) -> None:
        """The slice's events whose person withdrew analytics consent (an opt-out request): they load without
        identifiers, as if the tracker had sent consent.analytics = false. Nothing is read while nobody has
        opted out; otherwise only identifiers of workspaces with an opt-out are blind-indexed, and lines are
        matched by one equi-join per identifier column."""
        if not self.con.execute("SELECT count(*) FROM withdrawn").fetchall()[0][0]:
            self.con.execute("CREATE OR REPLACE TABLE refused_rows (file_id INTEGER, line_no BIGINT)")
            return
        candidates = self.con.sql(" UNION ".join(
            f"SELECT p.workspace_id AS ws, {i} AS which, p.{c} AS v FROM parsed p JOIN status s USING (file_id, line_no) "
            f"WHERE s.status = 'loaded' AND p.{c} IS NOT NULL AND p.workspace_id IN (SELECT workspace_id FROM withdrawn)"
            for i, c in enumerate(LANDING_SUBJECT_FIELDS, 1)
        )).to_arrow_table()
        hashed = candidates.append_column(  # noqa: F841 - read by DuckDB's replacement scan
            "bidx", blind_index_by_kind(cipher, candidates.column("ws"), candidates.column("which"),
                                        candidates.column("v"), [EVENT_COLUMNS[c][CATEGORY_HINT] for c in LANDING_SUBJECT_FIELDS]))
        self.con.execute(
            "CREATE OR REPLACE TABLE refused_values AS SELECT h.ws, h.which, h.v FROM hashed h "
            "SEMI JOIN withdrawn w ON w.workspace_id = h.ws AND w.subject_bidx = h.bidx"
        )
        self.con.execute("CREATE OR REPLACE TABLE refused_rows AS " + " UNION ".join(
            f"SELECT p.file_id, p.line_no FROM parsed p JOIN refused_values r ON r.ws = p.workspace_id "
            f"AND r.which = {i} AND r.v = p.{c}"
            for i, c in enumerate(LANDING_SUBJECT_FIELDS, 1)
        ))

    def _enrichment_tables(self) -> None:
        """Lookup tables of the slice's distinct user agents, IPs and URLs (a tenth of the rows or fewer):
        parsing and regular expressions run once per value, and the events join them."""
        valid = "FROM parsed WHERE reason IS NULL"
        self.con.execute(
            f"""
            CREATE OR REPLACE TABLE page_urls AS
            SELECT url, {_url_columns('url', 'page')},
                   nullif(regexp_extract(url, '{_URL_SCHEME}[^/?#]*([^?#]*)', 1), '') AS page_path,
                   {_utm('url', 'source')}, {_utm('url', 'medium')}, {_utm('url', 'campaign')}
            FROM (SELECT DISTINCT url {valid} AND url IS NOT NULL);
            CREATE OR REPLACE TABLE referrer_urls AS
            SELECT referrer, {_url_columns('referrer', 'referrer')}
            FROM (SELECT DISTINCT referrer {valid} AND referrer IS NOT NULL)
            """
        )
        uas = [r[0] for r in self.con.execute(
            "SELECT DISTINCT user_agent FROM parsed WHERE reason IS NULL AND user_agent IS NOT NULL").fetchall()]
        ua = parse_user_agents(uas)
        self.con.execute("CREATE OR REPLACE TABLE ua AS SELECT * FROM ua")
        valid_ips = "SELECT DISTINCT ip FROM parsed WHERE reason IS NULL AND ip IS NOT NULL"
        ipn6 = ip_networks(r[0] for r in self.con.execute(f"{valid_ips} AND contains(ip, ':')").fetchall())
        self.con.execute(
            f"CREATE OR REPLACE TABLE ipn AS SELECT ip, 4::BIGINT AS ip_version, {ipv4_network_sql('ip')} AS ip_network "
            f"FROM ({valid_ips} AND NOT contains(ip, ':')) UNION ALL SELECT * FROM ipn6"
        )

    def _protected(self, source: str, columns, table: str, cipher: FieldCipher) -> Iterator[pa.RecordBatch]:
        """Protected rows, stamped with the load id (dlt adds none to arrow data; recovery needs it)."""
        select = protect(self.con, source, columns, cipher, table=table)
        stamped = f"SELECT *, {literal(self.load_id)} AS _dlt_load_id FROM ({select})"
        yield from self.con.sql(stamped).to_arrow_reader(YIELD_BATCH_ROWS)


def _read_group(group: list[LandingFile]) -> tuple[list[tuple[LandingFile, FileLines | str]], list[LandingFile], int]:
    """Each file of `group` with its lines, or the reason it is left for a later run, until the lines read
    hold READ_CHUNK_BYTES (the first file is always read); the files left unread for the next group; and the
    bytes the lines read hold.
    Groups are made by the files' stored sizes, and a gzip bomb of a few KB inflates to MAX_FILE_BYTES: the
    group stops on what was read, so a group of bombs holds one or two, not a hundred."""
    read: list[tuple[LandingFile, FileLines | str]] = []
    held = 0
    for index, landing_file in enumerate(group):
        if held >= READ_CHUNK_BYTES:
            return read, group[index:], held
        try:
            lines = read_lines(landing_file)
        except FileChanged:
            read.append((landing_file, "changed_while_reading"))
        except OSError:
            read.append((landing_file, "unreadable"))
        else:
            read.append((landing_file, lines))
            held += lines.lines.nbytes
    return read, [], held


def _read_ahead(groups: Iterator[list[LandingFile]]) -> Iterator[list[tuple[LandingFile, FileLines | str]]]:
    """The groups' files read (see `_read_group`), the next group in a thread while the caller validates the
    current one: reading is I/O, gunzip, SHA-256 and arrow's split, all of which release the GIL, as DuckDB
    does while it validates, so the two overlap on the second core. One group is in flight at a time; the
    files a group left unread lead the next one (the run's order is kept). A group holding more than
    _READ_AHEAD_BYTES of lines (a file near the 256 MB limit) is validated before the next is read: two such
    groups at once would pass the memory cap."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="events-read") as reader:
        pending: Future | None = reader.submit(_read_group, next(groups, []))
        while pending is not None:
            read, rest, held = pending.result()
            pending = None  # the future holds the group too
            following = rest + next(groups, [])
            alone = held > _READ_AHEAD_BYTES
            if alone:
                yield read
                del read  # the group's lines are gone before the next is read, and so is what they held
                release_free_memory()
            pending = reader.submit(_read_group, following) if following else None
            if not alone:
                yield read


_SCAN_BATCH_ROWS = 8_192
_KEYED_BATCH_LINES = 50_000
_READ_AHEAD_BYTES = 4 * READ_CHUNK_BYTES
_LINES_SCHEMA = pa.schema(
    [("file_id", pa.int32()), ("received_date", pa.date32()), ("line_no", pa.int64()), ("line", pa.large_string()),
     ("defect", pa.string()), ("defect_detail", pa.string())]
)


def _lines_table(file_id: list, received_date: list, line_no: list, line: list, defect: list,
                 defect_detail: list) -> pa.Table:
    """The arrow table of lines that the validation SELECT reads (one chunk of files), in batches of
    `_SCAN_BATCH_ROWS` (zero-copy slices): DuckDB's threads take an arrow table batch by batch, so one batch
    per file would leave a core idle whenever a chunk holds a single file."""
    parts = (file_id, received_date, line_no, line, defect, defect_detail)
    table = pa.table(
        [pa.chunked_array(part, type=field.type) for part, field in zip(parts, _LINES_SCHEMA)], schema=_LINES_SCHEMA,
    )
    return pa.Table.from_batches(table.to_batches(max_chunksize=_SCAN_BATCH_ROWS), schema=_LINES_SCHEMA)


def _has_column(con, table: str, column: str, catalog: str | None = None) -> bool:
    return bool(con.execute(
        "SELECT count(*) FROM duckdb_columns() WHERE schema_name = ? AND table_name = ? AND column_name = ? "
        "AND database_name = coalesce(?, current_database())", [DATASET_NAME, table, column, catalog]).fetchone()[0])


def ledger_index(con, catalog: str | None = None) -> LedgerIndex:
    """What the landing ledger (in the attached database `catalog`, if given) records as loaded."""
    index = LedgerIndex()
    if not table_exists(con, DATASET_NAME, LEDGER_TABLE, catalog):
        return index
    prefix = f"{catalog}." if catalog else ""
    if not _has_column(con, LEDGER_TABLE, "content_sha256", catalog):
        index.legacy_urls = {r[0] for r in con.execute(f"SELECT file_url FROM {prefix}{DATASET_NAME}.{LEDGER_TABLE}").fetchall()}
        return index
    for url, path, size, modified, sha in con.execute(
        f"SELECT file_url, file_path, size_bytes, modified_at, content_sha256 FROM {prefix}{DATASET_NAME}.{LEDGER_TABLE}"
    ).fetchall():
        if path is None:
            index.legacy_urls.add(url)
            continue
        index.versions.add((path, size, modified))
        index.contents.add((path, sha))
        index.paths.add(path)
    return index


def wipe_work_dir(work_dir: Path) -> None:
    """Remove what earlier (possibly crashed) runs left: it may hold plaintext spilled by DuckDB."""
    if work_dir.exists():
        for child in work_dir.iterdir():
            shutil.rmtree(child, ignore_errors=True) if child.is_dir() else child.unlink(missing_ok=True)
