"""Constants of the usage-events source: table names, the stored columns and their personal-data declaration.

The column hints below are the single declaration of which columns hold personal data: encryption
(`pipelines.privacy.protect`) reads them here, and the privacy engine reads the same hints back from the
stored dlt schema. A column with `x-data-category` is stored only as ciphertext; `x-blind-index-of` names the
plaintext column whose keyed hash it holds; `x-subject-of` lists the columns that identify the data subject
(first non-null wins), whose per-subject key encrypts the row's personal values.
"""

import os

from dlt.common.schema.typing import TTableSchemaColumns

from pipelines.workspaces import UNATTRIBUTED_WORKSPACE  # noqa: F401 - lines without a valid workspace

SOURCE_NAME = "usage_events"
DATASET_NAME = "raw_events"
EVENTS_TABLE = "usage_events"
QUARANTINE_TABLE = "usage_events_quarantine"
LEDGER_TABLE = "landing_files"

# Landing layout: <landing>/dt=YYYY-MM-DD/<name>.ndjson[.gz]; dt is the arrival (partition) day.
LANDING_GLOB = "dt=*/*.ndjson*"
PARTITION_PREFIX = "dt="
# Final names: a file is taken only under one of them (writers land under a temporary name, then rename).
COMPLETE_SUFFIXES = (".ndjson", ".ndjson.gz")


def landing_settle_seconds() -> float:
    """GTG_LANDING_SETTLE_SECONDS (default 0: off), for writers that cannot rename: a file is taken only once
    unmodified for this many seconds. Read at each discovery, so a running sensor follows a change."""
    return float(os.environ.get("GTG_LANDING_SETTLE_SECONDS") or 0)

# A line longer than this is quarantined as `line_too_long` without being parsed (real events are a few KB; a
# 50 MB line made DuckDB's JSON parser exceed its memory cap). Of such a line, of the partial line where a gzip
# stream was cut and of an undecodable file, the quarantine keeps the first QUARANTINED_HEAD_BYTES.
MAX_LINE_BYTES = 1024 * 1024
# A file is read up to this many bytes, uncompressed (a gzip bomb of a few KB inflates to any size); what lies
# beyond is one quarantined line, `file_too_large`. Trackers' files are far smaller (the sandbox's: ~25 MB).
MAX_FILE_BYTES = 256 * 1024 * 1024
# A file is read up to this many lines; what lies beyond is one quarantined line, `too_many_lines`. An event
# is ~560 bytes on average (the sandbox's), so a file within MAX_FILE_BYTES holds about 480k of them; without
# the cap a few MB of newlines (blank lines are quarantined one by one, like any line that is not JSON) cost
# minutes of work and millions of quarantine rows per file, and splitting 256 MB of newlines GBs of offsets.
MAX_FILE_LINES = 1_000_000
QUARANTINED_HEAD_BYTES = 64 * 1024
# User agents are parsed from their first MAX_USER_AGENT_CHARS characters only (real ones are 100-300): the
# parse cost of a value is bounded, and the stored (encrypted) user agent stays whole.
MAX_USER_AGENT_CHARS = 512

# Plausibility beyond the JSON Schema: an event cannot have happened before this, nor more than one day
# after the end of the day it landed on (device clocks drift, but not by days).
EARLIEST_EVENT = "2000-01-01"
MAX_CLOCK_SKEW_DAYS = 1

# Files are read in groups of about this many bytes so memory stays flat however large the landing day is.
# A group exists about three times over while it is validated (the file's bytes, its split lines, DuckDB's
# vectors), and the next group is read meanwhile (`work._read_ahead`): 16 MB groups peaked about 40 MB lower
# than 64 MB ones, for about 0.5 s per million lines.
READ_CHUNK_BYTES = 16 * 1024 * 1024
# A run is processed in slices of whole files of about this many bytes: what the work database holds at once.
SLICE_BYTES = 256 * 1024 * 1024
# ... and of at most this many lines (unless one file alone holds more, up to MAX_FILE_LINES): the duplicate
# check's memory grows with a slice's lines, not its bytes (about 550 MB per million), and a slice of small
# files of short or empty lines would otherwise hold tens of millions of them. A slice of real events reaches
# SLICE_BYTES first (about 470k lines).
SLICE_LINES = 1_000_000
# Rows per arrow batch handed to dlt. Each batch exists in a few copies at once (DuckDB's result, dlt's
# normalised table, the parquet writer's buffers), so this sets the extraction's memory on top of the work
# database: 50k rows held about 150 MB more at the peak than 10k, for no measurable speed.
YIELD_BATCH_ROWS = 10_000
# DuckDB work database: memory cap before it spills to the work folder (GTG_WORK_MEMORY_LIMIT to change). Part
# of what DuckDB holds beyond its cap grows with the slice's distinct values: at 300 MB a 10M-event run peaked
# 1.05x above a 1M one (616-623 MB), at 256 MB 1.02x (584 MB), at the same speed within run-to-run noise.
WORK_MEMORY_LIMIT = os.environ.get("GTG_WORK_MEMORY_LIMIT", "256MB")
# A lower cap while a staged slice is protected and streamed to dlt (GTG_STREAM_MEMORY_LIMIT): then the
# keyring, the arrow batches and dlt's writer are busy in Python, while DuckDB only re-reads the staged slice
# and its lookups, which spill cheaply. With DuckDB at the full cap in that phase, the process peaked there, and
# higher the more people a slice holds: one slice of the 10M bench files peaked 60 MB above one of the 1M files.
STREAM_MEMORY_LIMIT = os.environ.get("GTG_STREAM_MEMORY_LIMIT", "200MB")

IP_NETWORK_PREFIX = {4: 24, 6: 48}

_PERSONAL = {"data_type": "binary", "nullable": True}
_INDEX = {"data_type": "binary", "nullable": True}

EVENT_COLUMNS: TTableSchemaColumns = {
    "event_id": {"data_type": "text", "nullable": False, "primary_key": True, "unique": True},
    "workspace_id": {"data_type": "text", "nullable": False},
    "event_type": {"data_type": "text", "nullable": False},
    "occurred_at": {"data_type": "timestamp", "timezone": True, "nullable": False},
    "received_date": {"data_type": "date", "nullable": False},
    "subject_ref": {"data_type": "binary", "nullable": True, "x-subject-ref": True,
                    "x-subject-of": ["user_id", "anonymous_id", "device_id"]},
    "user_id": {**_PERSONAL, "x-data-category": "user.unique_id"},
    "user_id_bidx": {**_INDEX, "x-blind-index-of": "user_id"},
    "anonymous_id": {**_PERSONAL, "x-data-category": "user.device.cookie_id"},
    "anonymous_id_bidx": {**_INDEX, "x-blind-index-of": "anonymous_id"},
    "device_id": {**_PERSONAL, "x-data-category": "user.device.device_id"},
    "device_id_bidx": {**_INDEX, "x-blind-index-of": "device_id"},
    "ip": {**_PERSONAL, "x-data-category": "user.device.ip_address"},
    "ip_bidx": {**_INDEX, "x-blind-index-of": "ip"},
    "ip_network": {"data_type": "text", "nullable": True},
    "ip_version": {"data_type": "bigint", "nullable": True},
    "user_agent": {**_PERSONAL, "x-data-category": "user.device.user_agent"},
    "browser_family": {"data_type": "text", "nullable": True},
    "browser_version": {"data_type": "text", "nullable": True},
    "os_family": {"data_type": "text", "nullable": True},
    "os_version": {"data_type": "text", "nullable": True},
    "device_family": {"data_type": "text", "nullable": True},
    "device_class": {"data_type": "text", "nullable": True},
    "is_bot": {"data_type": "bool", "nullable": True},
    "page_url": {"data_type": "text", "nullable": True},
    "page_host": {"data_type": "text", "nullable": True},
    "page_path": {"data_type": "text", "nullable": True},
    "referrer_url": {"data_type": "text", "nullable": True},
    "referrer_host": {"data_type": "text", "nullable": True},
    "utm_source": {"data_type": "text", "nullable": True},
    "utm_medium": {"data_type": "text", "nullable": True},
    "utm_campaign": {"data_type": "text", "nullable": True},
    # JSON text (DuckDB's json functions read it as is); typed `json` would make dlt re-type arrow strings.
    "properties": {"data_type": "text", "nullable": True},
    "consent_analytics": {"data_type": "bool", "nullable": False},
    "consent_ads": {"data_type": "bool", "nullable": False},
    "source_file": {"data_type": "text", "nullable": False},
    "source_line": {"data_type": "bigint", "nullable": False},
    "contract_version": {"data_type": "text", "nullable": False},
}

QUARANTINE_COLUMNS: TTableSchemaColumns = {
    "source_file": {"data_type": "text", "nullable": False, "primary_key": True},
    "source_line": {"data_type": "bigint", "nullable": False, "primary_key": True},
    "received_date": {"data_type": "date", "nullable": False},
    "reason": {"data_type": "text", "nullable": False},
    "reason_detail": {"data_type": "text", "nullable": True},
    "workspace_id": {"data_type": "text", "nullable": False},
    "subject_ref": {"data_type": "binary", "nullable": True, "x-subject-ref": True,
                    "x-subject-of": ["user_id", "anonymous_id"],
                    "x-subject-categories": {c: EVENT_COLUMNS[c]["x-data-category"] for c in ("user_id", "anonymous_id")}},
    "user_id_bidx": {**_INDEX, "x-blind-index-of": "user_id"},
    "anonymous_id_bidx": {**_INDEX, "x-blind-index-of": "anonymous_id"},
    "raw_line": {**_PERSONAL, "x-data-category": "user.content.raw_event"},
    "raw_bytes": {"data_type": "bigint", "nullable": False},
    # Keyed hash of the line's text and occurrence in its file: a line landed again is not quarantined twice.
    "line_key": {"data_type": "binary", "nullable": True},
    "contract_version": {"data_type": "text", "nullable": False},
}

# One row per file version loaded: exactly-once is keyed on what the file is (its path relative to the landing
# root, size, modification time and content hash), not on where the landing root was mounted (`file_url`).
LEDGER_COLUMNS: TTableSchemaColumns = {
    "file_url": {"data_type": "text", "nullable": False},
    "file_path": {"data_type": "text", "nullable": True, "primary_key": True},
    "received_date": {"data_type": "date", "nullable": False},
    "size_bytes": {"data_type": "bigint", "nullable": False},
    "modified_at": {"data_type": "double", "nullable": True},
    "content_sha256": {"data_type": "text", "nullable": True, "primary_key": True},
    "lines": {"data_type": "bigint", "nullable": False},
    "events_loaded": {"data_type": "bigint", "nullable": False},
    "duplicates_dropped": {"data_type": "bigint", "nullable": False},
    "lines_quarantined": {"data_type": "bigint", "nullable": False},
}

# What each column holds, in words: the UI's column schema and the warehouse's DuckDB comments show these (personal
# columns add their data category), so they are written once, here, beside the declaration.
_DESCRIPTIONS: dict[str, dict[str, str]] = {
    "events": {
        "event_id": "The tracker's id of the event (UUID); stored once.",
        "workspace_id": "The GTG workspace the event belongs to.",
        "event_type": "page_view, click, session_start or a custom event type.",
        "occurred_at": "When the event happened, by the device's clock (UTC).",
        "received_date": "The arrival day: the landing folder dt=YYYY-MM-DD it was loaded from.",
        "user_id": "The signed-in user's id.",
        "anonymous_id": "The tracker cookie's id.",
        "device_id": "The device's id.",
        "ip": "The client IP address.",
        "ip_network": "The IP's network (IPv4 /24, IPv6 /48): where, without who.",
        "ip_version": "4 or 6.",
        "user_agent": "The browser's user agent string.",
        "browser_family": "Browser, parsed from the user agent.",
        "browser_version": "Browser version, parsed from the user agent.",
        "os_family": "Operating system, parsed from the user agent.",
        "os_version": "Operating system version, parsed from the user agent.",
        "device_family": "Device model family, parsed from the user agent.",
        "device_class": "desktop, mobile, tablet or bot.",
        "is_bot": "Whether the user agent is a known bot.",
        "page_url": "The page, without its query string.",
        "page_host": "The page's host.",
        "page_path": "The page's path.",
        "referrer_url": "The referring page, without its query string.",
        "referrer_host": "The referring page's host.",
        "utm_source": "Campaign source (utm_source of the page URL).",
        "utm_medium": "Campaign medium (utm_medium).",
        "utm_campaign": "Campaign name (utm_campaign).",
        "properties": "The event's custom properties (JSON text).",
        "consent_analytics": "Analytics consent: without it the event carries no identifier.",
        "consent_ads": "Consent to personalised advertising.",
        "source_file": "The landed file the event was read from.",
        "source_line": "Its line number in that file.",
        "contract_version": "Version of the event contract the line was validated against.",
    },
    "quarantine": {
        "source_file": "The landed file holding the invalid line.",
        "source_line": "Its line number in that file.",
        "received_date": "The arrival day of the file.",
        "reason": "Why the line was refused (a reason code).",
        "reason_detail": "The field and rule that failed, never a value.",
        "workspace_id": "The workspace the line claims, or _unattributed.",
        "raw_line": "The whole line as it landed.",
        "raw_bytes": "Length of the line in bytes.",
        "line_key": "Keyed hash of the line and its occurrence in its file: a line landed again is not quarantined twice.",
        "contract_version": "Version of the event contract the line was checked against.",
    },
    "ledger": {
        "file_url": "Where the file was read (the landing location's URL).",
        "file_path": "Path relative to the landing root: with the hash, what identifies a file version.",
        "received_date": "The arrival day (dt= folder).",
        "size_bytes": "Size of the file when loaded.",
        "modified_at": "Modification time of the file when loaded (seconds since the epoch).",
        "content_sha256": "SHA-256 of the file's bytes.",
        "lines": "Lines read.",
        "events_loaded": "Events loaded from it.",
        "duplicates_dropped": "Lines dropped as duplicates of an event already held.",
        "lines_quarantined": "Lines quarantined.",
    },
}
for _columns, _texts in ((EVENT_COLUMNS, _DESCRIPTIONS["events"]), (QUARANTINE_COLUMNS, _DESCRIPTIONS["quarantine"]),
                         (LEDGER_COLUMNS, _DESCRIPTIONS["ledger"])):
    for _name, _text in _texts.items():
        _columns[_name]["description"] = _text

# Every table this source loads, with its column declaration: what the privacy engine governs.
TABLES: dict[str, TTableSchemaColumns] = {
    EVENTS_TABLE: EVENT_COLUMNS,
    QUARANTINE_TABLE: QUARANTINE_COLUMNS,
    LEDGER_TABLE: LEDGER_COLUMNS,
}
# The JSON fields of a landed line that identify its data subject and workspace: erasure scrubs landed
# files by them (landed files are raw copies of the events).
LANDING_SUBJECT_FIELDS = ("user_id", "anonymous_id", "device_id")
LANDING_WORKSPACE_FIELD = "workspace_id"
