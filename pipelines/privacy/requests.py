"""The data-subject request inbox: a small SQLite landing table the CRM app, the CLI and provider callbacks
write, and the privacy asset processes.

SQLite, not the warehouse: the app must be able to file a request while a pipeline holds DuckDB's single
writer lock. A request arrives with the person's identifier in the clear (that is how the app knows them);
processing replaces it with the workspace's blind index and clears the plaintext (secure_delete zeroes the
freed bytes), so after processing the inbox holds no personal data. Every request has a deadline: 30 days
after it was received (GDPR art. 12(3)).
"""

from __future__ import annotations

import datetime as dt
import json
import re
import sqlite3
import unicodedata
import uuid
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import pyarrow as pa
import pyarrow.compute as pc

from pipelines.paths import inside, private_dir
from pipelines.sqlite_files import PrivateSqliteFile
from pipelines.workspaces import UNATTRIBUTED_WORKSPACE, WORKSPACE_ID_PATTERN

REQUEST_TYPES = ("access", "correction", "erasure", "consent")
PURPOSES = ("analytics", "ads", "marketing_email")
# What a person can be identified by, and how their value is normalised before the blind index.
IDENTITY_KINDS = {
    "user_id": "as given",
    "anonymous_id": "as given (the tracker's cookie id)",
    "device_id": "as given",
    "email": "trimmed, lower-cased",
    "phone": "digits and a leading + only",
    "facebook_user_id": "as given (Meta app-scoped user id)",
    "google_user_id": "as given (Google account subject id)",
    "connection": "as given (a connection id of the mail registry; erasure only: a disconnected account's data)",
}
DEADLINE_DAYS = 30
STATUSES = ("received", "completed", "rejected")
WORKSPACE_PATTERN = re.compile(WORKSPACE_ID_PATTERN)
# Every request id, whoever files it (the app writes rows directly): it names the export file, so nothing
# else is accepted (no `/`, no `..`, no absolute path).
REQUEST_ID_PATTERN = re.compile(r"dsr_[0-9a-f]{16}")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_PHONE = re.compile(r"^\+?[0-9]{6,15}$")
_SQL_VARIABLES = 500  # ids per `IN (...)`: well under SQLite's limit on bound parameters
_CATEGORY = re.compile(r"[a-z_]+(\.[a-z_]+)*")  # a data category: user.device.ip_address

_SCHEMA = """
CREATE TABLE IF NOT EXISTS requests (
    request_id        TEXT PRIMARY KEY,
    request_type      TEXT NOT NULL,
    workspace_id      TEXT NOT NULL,
    identity_kind     TEXT NOT NULL,
    identity_value    TEXT,               -- plaintext as filed; cleared when processed
    identity_bidx     BLOB,               -- the workspace's blind index of the normalised value
    unattributed_bidx BLOB,               -- the same under the `_unattributed` key (lines without a workspace)
    field             TEXT,               -- correction: the data category to correct
    new_value         TEXT,               -- correction: the corrected value; cleared when processed
    purposes          TEXT,               -- consent: JSON object purpose -> allowed
    source            TEXT NOT NULL DEFAULT 'app',
    requested_by      TEXT NOT NULL DEFAULT 'app',
    received_at       TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    deadline          TEXT,
    status            TEXT NOT NULL DEFAULT 'received',
    status_detail     TEXT,
    completed_at      TEXT,
    export_path       TEXT,
    confirmation_code TEXT
);
"""


class RequestError(ValueError):
    """A request that cannot be accepted; the message says which field and why (never its value)."""


@dataclass
class Request:
    """One data-subject request as filed."""

    request_type: str
    workspace_id: str
    identity_kind: str
    identity_value: str
    field: str | None = None
    new_value: str | None = None
    purposes: Mapping[str, bool] | None = None
    source: str = "cli"
    requested_by: str = "cli"
    request_id: str | None = None
    confirmation_code: str | None = None


def normalise_identity(kind: str, value: str) -> str:
    """The form the blind index is computed on, so `Ann@Example.com ` finds `ann@example.com` (and an address
    typed with decomposed accents finds the composed one, as email-validator stores uploads: NFC)."""
    value = value.strip()
    if kind == "email":
        return unicodedata.normalize("NFC", value).lower()
    if kind == "phone":
        return re.sub(r"[^0-9+]", "", value)
    return value


def normalise_identities(kind: str, values: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """`normalise_identity` of every value (nulls stay null), each distinct value once: rows and requests share
    one implementation (Arrow's case mapping follows a newer Unicode than Python's, so two would disagree)."""
    distinct = pc.unique(values)
    forms = pa.array([None if v is None else normalise_identity(kind, v) for v in distinct.to_pylist()], pa.string())
    return pc.take(forms, pc.index_in(values, value_set=distinct))


def validate(request: Request, *, identity_sealed: bool = False) -> None:
    """Raise RequestError for the first problem found; messages name fields, never personal values.

    `identity_sealed`: the identity was already replaced by its blind index (a run stopped after sealing),
    so only the rest is checked. A message never quotes a value it was given: any field may hold personal data
    filed by mistake, and messages reach the audit log and Dagster's storage."""
    if request.request_id is not None:
        _check_request_id(request.request_id)
    if request.request_type not in REQUEST_TYPES:
        raise RequestError(f"unknown request type; expected one of {list(REQUEST_TYPES)}")
    if not isinstance(request.workspace_id, str) or not WORKSPACE_PATTERN.fullmatch(request.workspace_id):
        raise RequestError("workspace_id is not a valid workspace id")
    if request.workspace_id == UNATTRIBUTED_WORKSPACE:
        raise RequestError(f"workspace_id {UNATTRIBUTED_WORKSPACE} is reserved for lines without a workspace")
    if request.identity_kind not in IDENTITY_KINDS:
        raise RequestError(f"unknown identity kind; expected one of {list(IDENTITY_KINDS)}")
    if request.identity_kind == "connection" and request.request_type != "erasure":
        raise RequestError("a connection identifies an account's data, not a person: only erasure applies")
    if not identity_sealed:
        _check_identity(request.identity_kind, normalise_identity(request.identity_kind, request.identity_value or ""))
    if request.request_type == "correction":
        if not request.field or request.new_value is None or not str(request.new_value).strip():
            raise RequestError("a correction needs `field` (a data category) and a non-empty `new_value`")
    elif request.field is not None or request.new_value is not None:
        raise RequestError("`field` and `new_value` belong to correction requests only")
    if request.request_type == "consent":
        purposes = request.purposes or {}
        unknown = set(purposes) - set(PURPOSES)
        if not purposes or unknown or not all(isinstance(v, bool) for v in purposes.values()):
            raise RequestError(f"a consent request needs `purposes`: a non-empty map of {list(PURPOSES)} to true/false")
    elif request.purposes:
        raise RequestError("`purposes` belongs to consent requests only")


def shown(row: Mapping[str, Any]) -> dict[str, Any]:
    """A request row as status displays, Dagster metadata and the audit log may show it: an id, type, kind or
    workspace that fails its check is replaced by `invalid` (the app may have put a person's e-mail in any
    field); `field` only when it is a plain category name."""
    checks = {
        "request_id": lambda v: isinstance(v, str) and REQUEST_ID_PATTERN.fullmatch(v),
        "request_type": lambda v: v in REQUEST_TYPES,
        "identity_kind": lambda v: v in IDENTITY_KINDS,
        "workspace_id": lambda v: isinstance(v, str) and WORKSPACE_PATTERN.fullmatch(v),
        "field": lambda v: v is None or (isinstance(v, str) and _CATEGORY.fullmatch(v)),
    }
    return {k: (v if k not in checks or checks[k](v) else "invalid") for k, v in row.items()}


def export_file(exports_dir: Path, request_id: str) -> Path:
    """Where the access export of `request_id` is: derived here, never read from the inbox, and always a
    file directly inside `exports_dir` (the id is checked against REQUEST_ID_PATTERN, the path resolved)."""
    _check_request_id(request_id)
    return inside(private_dir(Path(exports_dir)), f"{request_id}.json")


def remove_export(exports_dir: Path, request_id: str) -> bool:
    """Delete a request's export if there is one: the path is derived from the id inside `exports_dir`, never
    read back from the inbox (an id off the pattern never had an export written). Whether one was there."""
    try:
        path = export_file(exports_dir, request_id)
    except RequestError:
        return False
    existed = path.exists()
    path.unlink(missing_ok=True)
    return existed


def _check_request_id(request_id: object) -> None:
    if not isinstance(request_id, str) or not REQUEST_ID_PATTERN.fullmatch(request_id):
        raise RequestError("request_id does not match dsr_ and 16 lowercase hex digits")


def _check_identity(kind: str, value: str) -> None:
    if not value:
        raise RequestError(f"the {kind} identifying the person is empty")
    if kind == "email" and not _EMAIL.match(value):
        raise RequestError("the email identifying the person is malformed")
    if kind == "phone" and not _PHONE.match(value):
        raise RequestError("the phone number identifying the person is malformed")


@dataclass(frozen=True)
class Closing:
    """How one request ends: `completed` or `rejected`, with a detail free of personal data."""

    request_id: str
    status: str
    detail: str
    export_path: str | None = None


class Inbox(PrivateSqliteFile):
    """The request landing table. Each method opens its own short connection (the file is shared)."""

    SCHEMA = _SCHEMA

    def submit(self, request: Request, now: dt.datetime | None = None) -> str:
        """Validate and file a request; returns its id. Nothing is written when it is invalid."""
        validate(request)
        received = (now or dt.datetime.now(dt.timezone.utc)).astimezone(dt.timezone.utc)
        request_id = request.request_id or f"dsr_{uuid.uuid4().hex[:16]}"
        with closing(self._connect()) as con, con:
            con.execute(
                "INSERT INTO requests (request_id, request_type, workspace_id, identity_kind, identity_value, "
                "field, new_value, purposes, source, requested_by, received_at, deadline, confirmation_code) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (request_id, request.request_type, request.workspace_id, request.identity_kind,
                 request.identity_value, request.field, request.new_value,
                 json.dumps(dict(request.purposes)) if request.purposes else None,
                 request.source, request.requested_by, _iso(received),
                 _iso(received + dt.timedelta(days=DEADLINE_DAYS)), request.confirmation_code),
            )
        return request_id

    def submit_once(self, request: Request) -> str:
        """`submit`, unless a request with the same confirmation code (a provider callback delivered again)
        was filed already: then that request's id, and nothing is written."""
        if request.confirmation_code:
            with closing(self._connect()) as con:
                row = con.execute("SELECT request_id FROM requests WHERE confirmation_code = ?",
                                  (request.confirmation_code,)).fetchone()
            if row is not None:
                return row["request_id"]
        return self.submit(request)

    def pending(self) -> list[dict[str, Any]]:
        """Requests not yet processed, oldest first (rows the app wrote directly included)."""
        with closing(self._connect()) as con:
            rows = con.execute("SELECT * FROM requests WHERE status = 'received' ORDER BY received_at, rowid").fetchall()
        return [dict(r) for r in rows]

    def all(self) -> list[dict[str, Any]]:
        """Every request, without the plaintext columns, as `shown` (for status displays)."""
        return self._listing("", ())

    def get(self, request_id: str) -> dict[str, Any] | None:
        """One request as `all` shows it, looked up by its stored id."""
        rows = self._listing("WHERE request_id = ?", (request_id,))
        return rows[0] if rows else None

    def _listing(self, where: str, params: tuple) -> list[dict[str, Any]]:
        with closing(self._connect()) as con:
            rows = con.execute(
                "SELECT request_id, request_type, workspace_id, identity_kind, field, source, requested_by, "
                "received_at, coalesce(deadline, strftime('%Y-%m-%dT%H:%M:%fZ', received_at, '+30 days')) AS deadline, "
                f"status, status_detail, completed_at, export_path FROM requests {where} ORDER BY received_at, rowid",
                params,
            ).fetchall()
        return [shown(dict(r)) for r in rows]

    def seal(self, sealed: Mapping[str, tuple[bytes, bytes]]) -> None:
        """Store the blind indexes of each request's identity (its workspace's, the unattributed one's) and
        clear the plaintext identity."""
        with closing(self._connect()) as con, con:
            con.executemany(
                "UPDATE requests SET identity_bidx = ?, unattributed_bidx = ?, identity_value = NULL, "
                "deadline = coalesce(deadline, strftime('%Y-%m-%dT%H:%M:%fZ', received_at, '+30 days')) "
                "WHERE request_id = ?",
                [(bidx, unattributed, rid) for rid, (bidx, unattributed) in sealed.items()],
            )

    def finish(self, request_id: str, status: str, detail: str, export_path: str | None = None,
               now: dt.datetime | None = None) -> None:
        """Close one request (see `finish_many`)."""
        self.finish_many([Closing(request_id, status, detail, export_path)], now=now)

    def finish_many(self, closings: Sequence[Closing], now: dt.datetime | None = None) -> None:
        """Close requests in one transaction (one commit for a whole batch); the plaintext columns are cleared
        whatever the outcome. A rejected request also loses its `field` and any type, kind or workspace that
        failed its check (replaced by `invalid`): the app may have put a person's data in any column, and
        after processing the inbox holds none."""
        for item in closings:
            if item.status not in STATUSES[1:]:
                raise ValueError(f"a request finishes as completed or rejected, not {item.status!r}")
        if not closings:
            return
        at = _iso(now or dt.datetime.now(dt.timezone.utc))
        with closing(self._connect()) as con, con:
            rejected = [c.request_id for c in closings if c.status == "rejected"]
            kept = {}
            for start in range(0, len(rejected), _SQL_VARIABLES):
                chunk = rejected[start:start + _SQL_VARIABLES]
                kept.update((r["request_id"], shown(dict(r))) for r in con.execute(
                    "SELECT request_id, request_type, identity_kind, workspace_id FROM requests "
                    f"WHERE request_id IN ({','.join('?' * len(chunk))})", chunk).fetchall())
            con.executemany(
                "UPDATE requests SET status = ?, status_detail = ?, export_path = ?, completed_at = ?, "
                "identity_value = NULL, new_value = NULL, field = CASE WHEN ? THEN NULL ELSE field END, "
                "request_type = coalesce(?, request_type), identity_kind = coalesce(?, identity_kind), "
                "workspace_id = coalesce(?, workspace_id) WHERE request_id = ?",
                [(c.status, c.detail, c.export_path, at, c.status == "rejected",
                  *(kept.get(c.request_id, {}).get(k) for k in ("request_type", "identity_kind", "workspace_id")),
                  c.request_id) for c in closings],
            )

    def earlier_exports(self, identities: pa.Table) -> list[str]:
        """Ids of completed access requests of these identities (columns workspace_id, bidx: an identity
        blind index) with an export: erasure removes them (the file is found by `export_file`, never by the
        stored path, which only informs a status display). One query over the requests holding an export
        (few: an export is deleted after 30 days), however many identities a batch erases; the identities are
        read only when there is one."""
        with closing(self._connect()) as con:
            rows = con.execute("SELECT request_id, workspace_id, identity_bidx FROM requests "
                               "WHERE export_path IS NOT NULL AND identity_bidx IS NOT NULL "
                               "ORDER BY received_at, rowid").fetchall()
        if not rows:
            return []
        wanted = set(zip(identities.column("workspace_id").to_pylist(), identities.column("bidx").to_pylist()))
        return [r["request_id"] for r in rows if (r["workspace_id"], bytes(r["identity_bidx"])) in wanted]

    def exports_before(self, moment: dt.datetime) -> list[str]:
        """Ids of the requests whose export was written before `moment`."""
        with closing(self._connect()) as con:
            rows = con.execute("SELECT request_id, export_path FROM requests WHERE export_path IS NOT NULL "
                               "AND completed_at < ?", (_iso(moment),)).fetchall()
        return [r["request_id"] for r in rows]

    def forget_export(self, request_id: str, why: str) -> None:
        self.forget_exports([request_id], why)

    def forget_exports(self, request_ids: list[str], why: str) -> None:
        """Note that these requests' exports were deleted, and why, in one transaction (none when there are
        none: most erasures find no earlier export)."""
        if not request_ids:
            return
        with closing(self._connect()) as con, con:
            con.executemany("UPDATE requests SET export_path = NULL, status_detail = status_detail || '; export ' "
                            "|| ? WHERE request_id = ?", [(why, rid) for rid in request_ids])


def request_from_row(row: Mapping[str, Any]) -> Request:
    """A stored row back into a Request (for validation of rows the app wrote directly)."""
    purposes = row.get("purposes")
    try:
        purposes = json.loads(purposes) if purposes else None
    except ValueError:
        purposes = {"<unreadable>": True}
    return Request(
        request_type=row["request_type"], workspace_id=row["workspace_id"], identity_kind=row["identity_kind"],
        identity_value=row.get("identity_value") or "", field=row.get("field"), new_value=row.get("new_value"),
        purposes=purposes, source=row.get("source") or "app", requested_by=row.get("requested_by") or "app",
        request_id=row["request_id"],
    )


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
