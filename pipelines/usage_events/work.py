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
from pathlib import Path
from typing import Iterator

import duckdb
import pyarrow as pa

from pipelines.memory import release_free_memory
from pipelines.privacy.consent import withdrawn_sql
from pipelines.privacy.categories import CATEGORY_HINT
from pipelines.privacy.protect import FieldCipher, blind_index_by_kind, protect
from pipelines.sql import ident, literal, loose_json_field
from pipelines.warehouse import table_exists
from pipelines.usage_events.contract import CONTRACT_VERSION, CompiledContract
from pipelines.usage_events.enrich import ip_networks, ipv4_network_sql, parse_user_agents
from pipelines.usage_events.landing import LandingFile, chunk_files, read_lines
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
    return f"nullif(url_decode(regexp_extract({column}, '[?&]utm_{name}=([^&#]*)', 1)), '') AS utm_{name}"


class EventWork:
    """One run's work database. Use as a context manager: the folder is wiped on exit, crash or not."""

    def __init__(self, work_dir: Path, contract: CompiledContract, load_id: str) -> None:
        self.load_id = load_id
        self.work_dir = work_dir / f"run-{uuid.uuid4().hex}"
        wipe_work_dir(work_dir)
        self.work_dir.mkdir(parents=True)
        self.contract = contract
        self.con = duckdb.connect(config={"memory_limit": WORK_MEMORY_LIMIT, "temp_directory": str(self.work_dir)})
        self.con.execute("SET TimeZone = 'UTC'; SET preserve_insertion_order = false")
        self.con.execute("CREATE TABLE seen (event_id VARCHAR)")
        self._parse_sql = validation_select(contract, "chunk", EARLIEST_EVENT, MAX_CLOCK_SKEW_DAYS)
        self._next_file_id = 0

    def __enter__(self) -> EventWork:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.con.close()
        shutil.rmtree(self.work_dir, ignore_errors=True)

    # -- reading ---------------------------------------------------------------------------------------
    def load_files(self, files: list[LandingFile]) -> None:
        """Start a slice: parse and validate every line of `files` into a fresh `parsed` table, one chunk of
        files at a time. Files must come in the run's order (day, URL): the first copy of an event wins."""
        first_id = self._next_file_id
        self._next_file_id += len(files)
        self._drop_slice_tables()
        self._next_phase(WORK_MEMORY_LIMIT)
        self.con.execute(
            "CREATE OR REPLACE TABLE files (file_id INTEGER, url VARCHAR, received_date DATE, size_bytes BIGINT);"
            "CREATE OR REPLACE TABLE invalid_utf8 (file_id INTEGER, line_no BIGINT, raw VARCHAR)"
        )
        chunk = _lines_table([], [], [], [])  # noqa: F841 - read by DuckDB's replacement scan
        self.con.execute(f"CREATE OR REPLACE TABLE parsed AS {self._parse_sql} LIMIT 0")
        file_rows = pa.table(
            {
                "file_id": pa.array(range(first_id, first_id + len(files)), pa.int32()),
                "url": [f.url for f in files],
                "received_date": pa.array([f.received_date for f in files], pa.date32()),
                "size_bytes": pa.array([f.size for f in files], pa.int64()),
            }
        )
        self.con.execute("INSERT INTO files SELECT * FROM file_rows")
        ids = {f.url: first_id + i for i, f in enumerate(files)}
        for group in chunk_files(files):
            self._load_chunk([(ids[f.url], f) for f in group])

    def _drop_slice_tables(self) -> None:
        """Free what the previous slice built (everything but the run's accepted ids) before the next is read,
        so the new slice's parsing has the whole memory cap."""
        names = [r[0] for r in self.con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() AND table_name <> 'seen'"
        ).fetchall()]
        for name in names:
            self.con.execute(f"DROP TABLE {ident(name)}")

    def _load_chunk(self, group: list[tuple[int, LandingFile]]) -> None:
        arrays: dict[str, list[pa.Array]] = {"file_id": [], "received_date": [], "line_no": [], "line": []}
        invalid: list[tuple[int, int, str]] = []
        for file_id, landing_file in group:
            read = read_lines(landing_file.url)
            n = len(read.lines)
            arrays["file_id"].append(pa.array([file_id] * n, pa.int32()))
            arrays["received_date"].append(pa.array([landing_file.received_date] * n, pa.date32()))
            arrays["line_no"].append(pa.array(range(1, n + 1), pa.int64()))
            arrays["line"].append(read.lines.cast(pa.large_string()))
            invalid.extend((file_id, line_no, raw) for line_no, raw in read.invalid_utf8.items())
        chunk = _lines_table(**arrays)  # noqa: F841 - read by DuckDB's replacement scan
        self.con.execute(f"INSERT INTO parsed {self._parse_sql}")
        if invalid:
            rows = pa.table({"file_id": pa.array([i[0] for i in invalid], pa.int32()),
                             "line_no": pa.array([i[1] for i in invalid], pa.int64()),
                             "raw": [i[2] for i in invalid]})
            self.con.execute("INSERT INTO invalid_utf8 SELECT * FROM rows")

    # -- duplicates ------------------------------------------------------------------------------------
    def resolve_duplicates(self, warehouse_path: str | None) -> None:
        """Mark each line of the slice loaded, duplicate or quarantined.

        The first copy of an event id in the run (by day, file, line) is kept unless the warehouse or an
        earlier slice already holds that id; every later copy is a duplicate. The warehouse is read through
        a read-only attach. Earlier ids are looked up by semi-joins with the slice's own ids (the smaller
        side, so DuckDB hashes those), which keeps memory bounded by the slice however large the
        warehouse and the run grow.
        """
        earlier = ["SELECT event_id FROM seen"]
        attached = self._attach_warehouse(warehouse_path)
        if attached and table_exists(self.con, DATASET_NAME, EVENTS_TABLE, "wh"):
            earlier.append(f"SELECT event_id FROM wh.{DATASET_NAME}.{EVENTS_TABLE}")
        known = " UNION ALL ".join(f"SELECT * FROM ({ids}) SEMI JOIN slice_ids USING (event_id)" for ids in earlier)
        self.con.execute(
            f"""
            CREATE OR REPLACE TABLE slice_ids AS SELECT DISTINCT event_id FROM parsed WHERE reason IS NULL;
            CREATE OR REPLACE TABLE known_ids AS SELECT DISTINCT event_id FROM ({known});
            CREATE OR REPLACE TABLE status AS
            SELECT file_id, line_no,
                   CASE WHEN reason IS NOT NULL THEN 'quarantined'
                        WHEN row_number() OVER (PARTITION BY event_id ORDER BY received_date, file_id, line_no) > 1
                          OR event_id IN (SELECT event_id FROM known_ids) THEN 'duplicate'
                        ELSE 'loaded' END AS status
            FROM parsed
            """
        )
        self.con.execute(
            "INSERT INTO seen SELECT event_id FROM parsed JOIN status USING (file_id, line_no) WHERE status = 'loaded'"
        )
        self.con.execute(f"CREATE OR REPLACE TABLE withdrawn AS {withdrawn_sql(self.con, 'analytics', 'wh' if attached else None)}")
        if attached:
            self.con.execute("DETACH wh")

    def already_loaded(self, warehouse_path: str | None, urls: list[str]) -> set[str]:
        """Which of `urls` the warehouse's ledger records as loaded: the exactly-once check."""
        if not self._attach_warehouse(warehouse_path):
            return set()
        try:
            return loaded_file_urls(self.con, "wh") & set(urls)
        finally:
            self.con.execute("DETACH wh")

    def _attach_warehouse(self, warehouse_path: str | None) -> bool:
        if not warehouse_path or not Path(warehouse_path).exists():
            return False
        self.con.execute("ATTACH ? AS wh (READ_ONLY)", [warehouse_path])
        return True

    # -- output ----------------------------------------------------------------------------------------
    def counts(self) -> dict[str, int]:
        """Lines read, events loaded, duplicates dropped and lines quarantined in this slice."""
        row = self.con.execute(
            "SELECT count(*), count_if(status = 'loaded'), count_if(status = 'duplicate'), "
            "count_if(status = 'quarantined') FROM status"
        ).fetchone()
        return dict(zip(("lines", "events_loaded", "duplicates_dropped", "lines_quarantined"), row))

    def quarantine_reasons(self) -> dict[str, int]:
        """Quarantined lines per reason code (codes and field names only: no data)."""
        rows = self.con.execute(
            "SELECT reason, count(*) FROM parsed WHERE reason IS NOT NULL GROUP BY reason ORDER BY reason"
        ).fetchall()
        return {reason: count for reason, count in rows}

    def ledger(self) -> pa.Table:
        """One row per file of this slice: what the exactly-once check records."""
        return self.con.sql(
            f"""
            SELECT f.url AS file_url, f.received_date, f.size_bytes,
                   count(s.line_no) AS lines,
                   count_if(s.status = 'loaded')::BIGINT AS events_loaded,
                   count_if(s.status = 'duplicate')::BIGINT AS duplicates_dropped,
                   count_if(s.status = 'quarantined')::BIGINT AS lines_quarantined,
                   {literal(self.load_id)} AS _dlt_load_id
            FROM files f LEFT JOIN status s USING (file_id)
            GROUP BY ALL ORDER BY f.url
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
        """The quarantined lines, attributed to a workspace and a person where the line still says whose it is."""
        pattern = self.contract.schema["properties"]["workspace_id"]["pattern"]
        workspace = f"coalesce(p.workspace_id, {loose_json_field('p.line', 'workspace_id')})"
        self.con.execute(
            f"""
            CREATE OR REPLACE TABLE quarantine_plain AS
            SELECT f.url AS source_file, p.line_no AS source_line, p.received_date, p.reason, p.reason_detail,
                   CASE WHEN regexp_matches({workspace}, {literal(pattern)}) THEN {workspace}
                        ELSE '{UNATTRIBUTED_WORKSPACE}' END
                     AS workspace_id,
                   coalesce(p.user_id, {loose_json_field('coalesce(p.line, iu.raw)', 'user_id')}) AS user_id,
                   coalesce(p.anonymous_id, {loose_json_field('coalesce(p.line, iu.raw)', 'anonymous_id')}) AS anonymous_id,
                   coalesce(p.line, iu.raw) AS raw_line,
                   coalesce(strlen(p.line), strlen(iu.raw)) AS raw_bytes,
                   '{CONTRACT_VERSION}' AS contract_version
            FROM parsed p
            JOIN files f USING (file_id)
            LEFT JOIN invalid_utf8 iu USING (file_id, line_no)
            WHERE p.reason IS NOT NULL
            """
        )

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


_SCAN_BATCH_ROWS = 8_192
_LINES_SCHEMA = pa.schema(
    [("file_id", pa.int32()), ("received_date", pa.date32()), ("line_no", pa.int64()), ("line", pa.large_string())]
)


def _lines_table(file_id: list, received_date: list, line_no: list, line: list) -> pa.Table:
    """The arrow table of lines that the validation SELECT reads (one chunk of files), in batches of
    `_SCAN_BATCH_ROWS` (zero-copy slices): DuckDB's threads take an arrow table batch by batch, so one batch
    per file would leave a core idle whenever a chunk holds a single file."""
    table = pa.table(
        [pa.chunked_array(parts, type=field.type) for parts, field in zip((file_id, received_date, line_no, line), _LINES_SCHEMA)],
        schema=_LINES_SCHEMA,
    )
    return pa.Table.from_batches(table.to_batches(max_chunksize=_SCAN_BATCH_ROWS), schema=_LINES_SCHEMA)


def loaded_file_urls(con, catalog: str | None = None) -> set[str]:
    """The URLs the landing ledger records as loaded (in the attached database `catalog`, if given)."""
    if not table_exists(con, DATASET_NAME, LEDGER_TABLE, catalog):
        return set()
    prefix = f"{catalog}." if catalog else ""
    return {row[0] for row in con.execute(f"SELECT file_url FROM {prefix}{DATASET_NAME}.{LEDGER_TABLE}").fetchall()}


def wipe_work_dir(work_dir: Path) -> None:
    """Remove what earlier (possibly crashed) runs left: it may hold plaintext spilled by DuckDB."""
    if work_dir.exists():
        for child in work_dir.iterdir():
            shutil.rmtree(child, ignore_errors=True) if child.is_dir() else child.unlink(missing_ok=True)
