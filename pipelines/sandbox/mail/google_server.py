"""Wire-level sandbox of the Gmail REST API v1 and the People API v1 (contacts), batch endpoint included.

Why it exists: the Gmail and Google-contacts dlt sources run google-api-python-client unchanged against this
server (see `pipelines/sandbox/mail/__init__.py` for the redirect), so their paging, batching, incremental
sync and error handling are exercised over real HTTP before they ever meet Google.

What is served, as the SDK calls it (`{user}` is "me" or the account's address; the bearer token selects the
account, as with Google):
  GET  /gmail/v1/users/{user}/profile            users.getProfile (emailAddress, messagesTotal, historyId)
  GET  /gmail/v1/users/{user}/labels             users.labels.list
  GET  /gmail/v1/users/{user}/messages           users.messages.list: maxResults (<= 500, default 100),
                                                 pageToken, labelIds (repeated, all must match), q (after:,
                                                 before:, in:, label:, is:, from:, to:, subject:, bare words)
  GET  /gmail/v1/users/{user}/messages/{id}      users.messages.get: format full|metadata|minimal|raw,
                                                 metadataHeaders (repeated)
  GET  /gmail/v1/users/{user}/history            users.history.list: startHistoryId, historyTypes (repeated),
                                                 labelId, maxResults, pageToken; 404 when the id is expired
  GET  /v1/people/me/connections                 people.connections.list: personFields, pageSize, pageToken,
                                                 sortOrder, requestSyncToken, syncToken (expired -> 400
                                                 FAILED_PRECONDITION with ErrorInfo reason EXPIRED_SYNC_TOKEN)
  POST /batch, /batch/gmail/v1, /batch/people/v1 multipart/mixed of up to 100 application/http calls
Error bodies follow Google's JSON error format (code, message, errors[].reason, status).
"""

from __future__ import annotations

import base64
import bisect
import datetime as dt
import email.parser
import email.policy
import html
import itertools
import re
import urllib.parse
from collections.abc import Callable, Iterable
from email.utils import format_datetime
from http import HTTPStatus
from typing import Any

from pipelines.sandbox.mail.http import (
    ProviderError, Request, Response, Route, SandboxServer, decode_cursor, encode_cursor, path_pattern,
)
from pipelines.sandbox.mail.mailbox import SYSTEM_LABELS, Account, Change, Contact, Message

__all__ = ["GoogleServer"]

_GMAIL = "/gmail/v1/users/{user}"
_MAX_BATCH = 100
_HISTORY_TYPES = ("messageAdded", "messageDeleted", "labelAdded", "labelRemoved")
_PERSON_FIELDS = frozenset((
    "addresses", "ageRanges", "biographies", "birthdays", "calendarUrls", "clientData", "coverPhotos", "emailAddresses",
    "events", "externalIds", "genders", "imClients", "interests", "locales", "locations", "memberships", "metadata",
    "miscKeywords", "names", "nicknames", "occupations", "organizations", "phoneNumbers", "photos", "relations",
    "sipAddresses", "skills", "urls", "userDefined",
))
_SORT_KEYS: dict[str, Callable[[Contact], list[Any]]] = {
    "LAST_MODIFIED_ASCENDING": lambda c: [c.updated, c.id],
    "LAST_MODIFIED_DESCENDING": lambda c: [-c.updated, c.id],
    "FIRST_NAME_ASCENDING": lambda c: [c.given_name.lower(), c.family_name.lower(), c.id],
    "LAST_NAME_ASCENDING": lambda c: [c.family_name.lower(), c.given_name.lower(), c.id],
}


def google_error(status: int, message: str, reason: str, grpc_status: str, **extra: Any) -> Response:
    """Google's JSON error body (the shape googleapiclient's HttpError parses)."""
    error: dict[str, Any] = {"code": status, "message": message,
                             "errors": [{"message": message, "domain": "global", "reason": reason}], "status": grpc_status}
    error.update(extra)
    return Response.json({"error": error}, status)


def _bad_request(message: str) -> ProviderError:
    return ProviderError(google_error(400, message, "invalidArgument", "INVALID_ARGUMENT"))


def _not_found() -> ProviderError:
    return ProviderError(google_error(404, "Requested entity was not found.", "notFound", "NOT_FOUND"))


def _int_arg(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.arg(name)
    if raw in (None, "", "0"):
        return default
    try:
        value = int(raw)
    except ValueError:
        raise _bad_request(f"Invalid value for {name}: {raw}") from None
    return max(low, min(high, value))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode()


def _rfc2822(ms: int) -> str:
    return format_datetime(dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc))


def _rfc3339(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class GoogleServer(SandboxServer):
    """Gmail + People sandbox. `with GoogleServer(build_accounts()) as google: google.url`."""

    name = "google"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._batches = itertools.count(1)  # response boundaries, unique per batch

    def routes(self) -> list[Route]:
        return [
            Route("GET", path_pattern(f"{_GMAIL}/profile"), "gmail.users.getProfile", self._profile),
            Route("GET", path_pattern(f"{_GMAIL}/labels"), "gmail.users.labels.list", self._labels),
            Route("GET", path_pattern(f"{_GMAIL}/messages"), "gmail.users.messages.list", self._messages_list),
            Route("GET", path_pattern(f"{_GMAIL}/messages/{{id}}"), "gmail.users.messages.get", self._messages_get),
            Route("GET", path_pattern(f"{_GMAIL}/history"), "gmail.users.history.list", self._history),
            Route("GET", path_pattern("/v1/people/{person}/connections"), "people.people.connections.list",
                  self._connections),
            Route("POST", re.compile(r"/batch(?:/(?:gmail|people)/v1)?"), "google.batch", self._batch,
                  authenticated=False),
        ]

    # -- errors ------------------------------------------------------------------------------------------------

    def unauthenticated(self) -> Response:
        response = google_error(
            401, "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other "
            "valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.",
            "authError", "UNAUTHENTICATED")
        response.headers["WWW-Authenticate"] = 'Bearer realm="https://accounts.google.com/", error="invalid_token"'
        return response

    def rate_limited(self) -> Response:
        return google_error(429, "Too many concurrent requests for user.", "rateLimitExceeded", "RESOURCE_EXHAUSTED")

    def unavailable(self, status: int) -> Response:
        if status == 503:
            return google_error(503, "The service is currently unavailable.", "backendError", "UNAVAILABLE")
        return google_error(status, "Backend Error", "backendError", "INTERNAL" if status == 500 else "UNAVAILABLE")

    def not_found(self, request: Request) -> Response:
        return google_error(404, f"Method not found: {request.method} {request.path}", "notFound", "NOT_FOUND")

    # -- Gmail ---------------------------------------------------------------------------------------------------

    def _user(self, request: Request) -> Account:
        """The token's account; the path's userId must be "me" or that account's own address."""
        account = request.account
        assert account is not None
        user = request.params["user"]
        if user != "me" and user.lower() != account.email.lower():
            raise ProviderError(google_error(403, f"Delegation denied for {account.email}", "forbidden",
                                             "PERMISSION_DENIED"))
        return account

    def _profile(self, request: Request) -> Response:
        account = self._user(request)
        with account.lock:
            threads = len({m.thread_id for m in account.messages.values()})
            return Response.json({"emailAddress": account.email, "messagesTotal": len(account.messages),
                                  "threadsTotal": threads, "historyId": str(account.history_id)})

    def _labels(self, request: Request) -> Response:
        account = self._user(request)
        labels = [{"id": label_id, "name": name, "type": "system" if label_id in SYSTEM_LABELS else "user",
                   "messageListVisibility": "show", "labelListVisibility": "labelShow"}
                  for label_id, name in account.labels.items()]
        return Response.json({"labels": labels})

    def _messages_list(self, request: Request) -> Response:
        account = self._user(request)
        size = _int_arg(request, "maxResults", 100, 1, 500)
        label_ids = frozenset(request.args("labelIds"))
        query = request.arg("q") or ""
        matches = _query(account, query, label_ids)
        token = request.arg("pageToken")
        with account.lock:
            order = account.newest_first()
            if token:
                state = decode_cursor(token)
                if state is None or state.get("q") != [query, sorted(label_ids)]:
                    raise _bad_request("Invalid pageToken")
                position, estimate = bisect.bisect_right(order, tuple(state["k"])), state["n"]
            else:
                position = 0
                estimate = len(order) if matches is None else sum(matches(account.messages[i]) for _, i in order)
            page: list[dict[str, str]] = []
            last: tuple[int, str] | None = None
            for key in itertools.islice(order, position, None):
                message = account.messages[key[1]]
                if matches is None or matches(message):
                    if len(page) == size:
                        break
                    page.append({"id": message.id, "threadId": message.thread_id})
                    last = key
            else:
                last = None  # ran off the end: this is the last page
            body: dict[str, Any] = {"resultSizeEstimate": estimate}
            if page:
                body = {"messages": page, **body}
            if last is not None:
                body["nextPageToken"] = encode_cursor({"k": list(last), "n": estimate, "q": [query, sorted(label_ids)]})
            return Response.json(body)

    def _messages_get(self, request: Request) -> Response:
        account = self._user(request)
        fmt = (request.arg("format") or "full").lower()
        if fmt not in ("full", "metadata", "minimal", "raw"):
            raise _bad_request(f"Invalid value for format: {fmt}")
        with account.lock:
            message = account.messages.get(request.params["id"])
            if message is None:
                raise _not_found()
            return Response.json(_message_resource(account, message, fmt, request.args("metadataHeaders")))

    def _history(self, request: Request) -> Response:
        account = self._user(request)
        raw_start = request.arg("startHistoryId")
        if not raw_start or not raw_start.isdigit():
            raise _bad_request("Invalid startHistoryId" if raw_start else "Missing startHistoryId")
        start = int(raw_start)
        types = request.args("historyTypes") or list(_HISTORY_TYPES)
        if set(types) - set(_HISTORY_TYPES):
            raise _bad_request(f"Invalid historyTypes: {sorted(set(types) - set(_HISTORY_TYPES))}")
        label = request.arg("labelId")
        size = _int_arg(request, "maxResults", 100, 1, 500)
        token = request.arg("pageToken")
        with account.lock:
            if account.is_expired(start) or (not token and self.cursor_fault(request)):
                raise _not_found()
            after = start
            if token:
                state = decode_cursor(token)
                if state is None or state.get("start") != start:
                    raise _bad_request("Invalid pageToken")
                after = state["after"]
            records: list[dict[str, Any]] = []
            more = False
            for change in account.changes_after(after):
                if change.kind != "message":
                    continue
                record = _history_record(change, types, label)
                if record is None:
                    continue
                if len(records) == size:
                    more = True
                    break
                records.append(record)
            body: dict[str, Any] = {}
            if records:
                body["history"] = records
            if more:
                body["nextPageToken"] = encode_cursor({"start": start, "after": int(records[-1]["id"])})
            body["historyId"] = str(account.history_id)
            return Response.json(body)

    # -- People --------------------------------------------------------------------------------------------------

    def _connections(self, request: Request) -> Response:
        account = request.account
        assert account is not None
        if request.params["person"] != "me":
            raise _bad_request("resourceName must be people/me")
        fields = _person_fields(request)
        size = _int_arg(request, "pageSize", 100, 1, 1000)
        order = request.arg("sortOrder") or "LAST_MODIFIED_ASCENDING"
        if order not in _SORT_KEYS:
            raise _bad_request(f"Invalid value for sortOrder: {order}")
        want_sync = (request.arg("requestSyncToken") or "").lower() == "true"
        sync_token, page_token = request.arg("syncToken"), request.arg("pageToken")
        same = {"f": sorted(fields), "o": order}
        with account.lock:
            page_state = decode_cursor(page_token) if page_token else {}
            if page_state is None or (page_token and {k: page_state.get(k) for k in same} != same):
                raise _bad_request("Request must use the same parameters as the first call that provided the page token.")
            if sync_token:
                since = _sync_since(self, request, account, sync_token)
                upto = page_state.get("u", account.history_id)
                body, next_state = _sync_page(account, fields, since, upto, page_state.get("i", 0), size)
            else:
                upto = page_state.get("u", account.history_id)
                body, next_state = _full_page(account, fields, order, page_state, size)
            if next_state is not None:
                body["nextPageToken"] = encode_cursor({**same, **next_state, "u": upto})
            elif want_sync:
                body["nextSyncToken"] = encode_cursor({"a": account.index, "s": upto})
            return Response.json(body)

    # -- batch ---------------------------------------------------------------------------------------------------

    def _batch(self, request: Request) -> Response:
        content_type = request.headers.get("content-type", "")
        if not content_type.startswith("multipart/mixed"):
            raise _bad_request("Batch requests must be multipart/mixed")
        parser = email.parser.BytesParser(policy=email.policy.compat32)
        message = parser.parsebytes(b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + request.body)
        parts = message.get_payload() if message.is_multipart() else []
        if not parts:
            raise _bad_request("Batch request contains no parts")
        if len(parts) > _MAX_BATCH:
            raise _bad_request(f"Too many requests in batch: {len(parts)} (at most {_MAX_BATCH})")
        boundary = f"batch_{next(self._batches):012d}"
        chunks: list[bytes] = []
        for part in parts:
            inner = _parse_http_part(part.get_payload(decode=False), request.headers)
            answer = self.call_part(inner)
            content_id = (part.get("Content-ID") or "").strip().strip("<>")
            chunks.append(_http_part(boundary, content_id, answer))
        body = b"".join(chunks) + f"--{boundary}--\r\n".encode()
        return Response(200, body, {"Content-Type": f"multipart/mixed; boundary={boundary}"})


# -- Gmail rendering -----------------------------------------------------------------------------------------------


def _query(account: Account, query: str, label_ids: frozenset[str]) -> Callable[[Message], bool] | None:
    """A predicate for `q` and `labelIds`, or None when nothing filters (so the full count is known at once)."""
    tests: list[Callable[[Message], bool]] = []
    if label_ids:
        tests.append(lambda m: label_ids <= m.labels)
    names = {name.lower().replace(" ", "-"): label_id for label_id, name in account.labels.items()}
    for term in query.split():
        key, _, value = term.partition(":")
        key, value = key.lower(), value.lower()
        if value and key in ("after", "before"):
            bound = _query_time(value)
            tests.append((lambda m, b=bound: m.internal_date >= b) if key == "after" else
                         (lambda m, b=bound: m.internal_date < b))
        elif value and key in ("in", "label"):
            label = {"inbox": "INBOX", "sent": "SENT"}.get(value) if key == "in" else names.get(value)
            if label is None:
                raise _bad_request(f"Invalid label in query: {term}")
            tests.append(lambda m, lab=label: lab in m.labels)
        elif value and key == "is":
            flag = {"unread": "UNREAD", "important": "IMPORTANT", "starred": "STARRED"}.get(value)
            if flag is None:
                raise _bad_request(f"Unsupported query term: {term}")
            tests.append(lambda m, f=flag: f in m.labels)
        elif value and key == "from":
            tests.append(lambda m, v=value: v in m.sender.email.lower() or v in m.sender.name.lower())
        elif value and key == "to":
            tests.append(lambda m, v=value: any(v in a.email.lower() or v in a.name.lower() for a in m.to + m.cc))
        elif value and key == "subject":
            tests.append(lambda m, v=value: v in m.subject.lower())
        else:
            word = term.lower()
            tests.append(lambda m, w=word: w in m.subject.lower() or w in m.text.lower())
    if not tests:
        return None
    return lambda m: all(test(m) for test in tests)


def _query_time(value: str) -> int:
    """after:/before: take epoch seconds or a YYYY/MM/DD date (midnight UTC here; Gmail uses Pacific time)."""
    if value.isdigit():
        return int(value) * 1000
    try:
        day = dt.datetime.strptime(value.replace("-", "/"), "%Y/%m/%d").replace(tzinfo=dt.timezone.utc)
    except ValueError:
        raise _bad_request(f"Invalid date in query: {value}") from None
    return int(day.timestamp() * 1000)


def _headers(account: Account, message: Message, boundary: str) -> list[tuple[str, str]]:
    headers = [("Delivered-To", account.email)] if message.sender != account.owner else []
    headers += [("MIME-Version", "1.0"), ("Date", _rfc2822(message.internal_date)),
                ("Message-ID", message.message_id_header)]
    if message.in_reply_to:
        headers += [("In-Reply-To", message.in_reply_to), ("References", message.in_reply_to)]
    headers += [("Subject", message.subject), ("From", message.sender.header()),
                ("To", ", ".join(a.header() for a in message.to))]
    if message.cc:
        headers.append(("Cc", ", ".join(a.header() for a in message.cc)))
    content_type = (f'multipart/alternative; boundary="{boundary}"' if message.html else 'text/plain; charset="UTF-8"')
    headers.append(("Content-Type", content_type))
    return headers


def _part(part_id: str, mime: str, text: str) -> dict[str, Any]:
    data = text.encode()
    return {"partId": part_id, "mimeType": mime, "filename": "",
            "headers": [{"name": "Content-Type", "value": f'{mime}; charset="UTF-8"'}],
            "body": {"size": len(data), "data": _b64(data)}}


def _raw(headers: list[tuple[str, str]], message: Message, boundary: str) -> bytes:
    head = "".join(f"{name}: {value}\r\n" for name, value in headers)
    if not message.html:
        return (head + "\r\n" + message.text).encode()
    body = "".join(f"--{boundary}\r\nContent-Type: {mime}; charset=\"UTF-8\"\r\n\r\n{content}\r\n"
                   for mime, content in (("text/plain", message.text), ("text/html", message.html)))
    return (head + "\r\n" + body + f"--{boundary}--\r\n").encode()


def _message_resource(account: Account, message: Message, fmt: str, metadata_headers: Iterable[str]) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "id": message.id, "threadId": message.thread_id, "labelIds": sorted(message.labels),
        "snippet": html.escape(message.snippet).replace("&#x27;", "&#39;"), "sizeEstimate": message.size_estimate,
        "historyId": str(message.history_id), "internalDate": str(message.internal_date),
    }
    if fmt == "minimal":
        return resource
    boundary = f"0000000000009{message.id}"
    headers = _headers(account, message, boundary)
    if fmt == "raw":
        resource["raw"] = _b64(_raw(headers, message, boundary))
        return resource
    mime = "multipart/alternative" if message.html else "text/plain"
    if fmt == "metadata":
        wanted = {h.lower() for h in metadata_headers}
        kept = [h for h in headers if not wanted or h[0].lower() in wanted]
        resource["payload"] = {"partId": "", "mimeType": mime, "filename": "",
                               "headers": [{"name": n, "value": v} for n, v in kept]}
        return resource
    payload = _part("", mime, message.text) if not message.html else {
        "partId": "", "mimeType": mime, "filename": "", "body": {"size": 0},
        "parts": [_part("0", "text/plain", message.text), _part("1", "text/html", message.html)],
    }
    payload["headers"] = [{"name": n, "value": v} for n, v in headers]
    resource["payload"] = payload
    return resource


def _history_record(change: Change, types: list[str], label: str | None) -> dict[str, Any] | None:
    """One Gmail history record for a message change, limited to the requested types (None if none apply)."""
    before, after = change.before, change.after
    current = after or before
    assert isinstance(current, Message)
    if label and not any(isinstance(m, Message) and label in m.labels for m in (before, after)):
        return None
    ref = {"id": current.id, "threadId": current.thread_id}
    full = {**ref, "labelIds": sorted(current.labels)}
    record: dict[str, Any] = {"id": str(change.seq), "messages": [ref]}
    if before is None and "messageAdded" in types:
        record["messagesAdded"] = [{"message": full}]
    elif after is None and "messageDeleted" in types:
        record["messagesDeleted"] = [{"message": full}]
    elif isinstance(before, Message) and isinstance(after, Message):
        added, removed = sorted(after.labels - before.labels), sorted(before.labels - after.labels)
        if added and "labelAdded" in types:
            record["labelsAdded"] = [{"message": full, "labelIds": added}]
        if removed and "labelRemoved" in types:
            record["labelsRemoved"] = [{"message": full, "labelIds": removed}]
    return record if len(record) > 2 else None


# -- People rendering ------------------------------------------------------------------------------------------------


def _person_fields(request: Request) -> frozenset[str]:
    raw = request.arg("personFields") or ",".join(
        f.removeprefix("person.") for f in (request.arg("requestMask.includeField") or "").split(",") if f)
    fields = frozenset(f.strip() for f in raw.split(",") if f.strip())
    if not fields:
        raise _bad_request("personFields mask is required. Please specify one or more valid paths. "
                           "Valid paths are documented at https://developers.google.com/people/api/rest/v1/people/get.")
    if fields - _PERSON_FIELDS:
        raise _bad_request(f"Invalid personFields mask path: {sorted(fields - _PERSON_FIELDS)[0]}")
    return fields


def _sync_since(server: GoogleServer, request: Request, account: Account, token: str) -> int:
    state = decode_cursor(token)
    if state is None or state.get("a") != account.index:
        raise _bad_request("Sync token is invalid.")
    if account.is_expired(state["s"]) or (not request.arg("pageToken") and server.cursor_fault(request)):
        message = "Sync token is expired. Clear local cache and retry call without the sync token."
        raise ProviderError(Response.json({"error": {
            "code": 400, "message": message, "status": "FAILED_PRECONDITION",
            "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "EXPIRED_SYNC_TOKEN",
                         "domain": "people.googleapis.com"}]}}, 400))
    return int(state["s"])


def _full_page(account: Account, fields: frozenset[str], order: str, state: dict[str, Any],
               size: int) -> tuple[dict[str, Any], dict[str, Any] | None]:
    key = _SORT_KEYS[order]
    contacts = sorted(account.contacts.values(), key=key)
    after = state.get("k")
    if after is not None:
        contacts = [c for c in contacts if key(c) > after]
    page = contacts[:size]
    total = len(account.contacts)
    body: dict[str, Any] = {"connections": [_person(c, fields) for c in page], "totalPeople": total, "totalItems": total}
    if not page:
        del body["connections"]
    return body, ({"k": key(page[-1])} if len(contacts) > size else None)


def _sync_page(account: Account, fields: frozenset[str], since: int, upto: int, offset: int,
               size: int) -> tuple[dict[str, Any], dict[str, Any] | None]:
    people: list[dict[str, Any]] = []
    for before, after in account.net_changes("contact", since, upto).values():
        if isinstance(after, Contact):
            people.append(_person(account.contacts.get(after.id, after), fields))
        elif isinstance(before, Contact):
            people.append(_deleted_person(before))
    page = people[offset:offset + size]
    body: dict[str, Any] = {"connections": page} if page else {}
    return body, ({"i": offset + size} if len(people) > offset + size else None)


def _source(contact: Contact) -> dict[str, str]:
    return {"type": "CONTACT", "id": f"{int(contact.id[1:]):x}"}


def _etag(contact: Contact) -> str:
    return "%" + base64.b64encode(f"{contact.id}:{contact.version}".encode()).decode().rstrip("=")


def _person(contact: Contact, fields: frozenset[str]) -> dict[str, Any]:
    source = _source(contact)
    field_meta = {"primary": True, "source": source}
    person: dict[str, Any] = {"resourceName": f"people/{contact.id}", "etag": _etag(contact)}
    if "metadata" in fields:
        person["metadata"] = {"sources": [{**source, "etag": "#" + _etag(contact)[1:],
                                           "updateTime": _rfc3339(contact.updated)}], "objectType": "PERSON"}
    if "names" in fields:
        person["names"] = [{"metadata": field_meta, "displayName": contact.display_name,
                            "familyName": contact.family_name, "givenName": contact.given_name,
                            "displayNameLastFirst": f"{contact.family_name}, {contact.given_name}",
                            "unstructuredName": contact.display_name}]
    if "emailAddresses" in fields and contact.emails:
        person["emailAddresses"] = [
            {"metadata": {"primary": i == 0, "source": source}, "value": address,
             "type": "work" if i == 0 else "home", "formattedType": "Work" if i == 0 else "Home"}
            for i, address in enumerate(contact.emails)]
    if "phoneNumbers" in fields and contact.phones:
        person["phoneNumbers"] = [
            {"metadata": {"primary": i == 0, "source": source}, "value": display, "canonicalForm": e164,
             "type": "mobile" if i == 0 else "work", "formattedType": "Mobile" if i == 0 else "Work"}
            for i, (e164, display) in enumerate(contact.phones)]
    if "organizations" in fields and contact.company:
        person["organizations"] = [{"metadata": field_meta, "name": contact.company}]
    return person


def _deleted_person(contact: Contact) -> dict[str, Any]:
    return {"resourceName": f"people/{contact.id}", "etag": _etag(contact),
            "metadata": {"sources": [_source(contact)], "deleted": True, "objectType": "PERSON"}}


# -- batch wire format -------------------------------------------------------------------------------------------------


def _parse_http_part(payload: str, outer_headers: dict[str, str]) -> Request:
    """An `application/http` part (request line, headers, blank line, body) as a Request."""
    head, _, body = payload.replace("\r\n", "\n").partition("\n\n")
    lines = head.strip("\n").split("\n")
    method, target, *_ = lines[0].split(" ")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if "authorization" not in headers and "authorization" in outer_headers:
        headers["authorization"] = outer_headers["authorization"]
    path, _, query = target.partition("?")
    return Request(method=method.upper(), path=path, query=urllib.parse.parse_qs(query, keep_blank_values=True),
                   headers=headers, body=body.encode())


def _http_part(boundary: str, content_id: str, response: Response) -> bytes:
    reason = HTTPStatus(response.status).phrase
    headers = "".join(f"{name}: {value}\r\n" for name, value in response.headers.items())
    head = (f"--{boundary}\r\nContent-Type: application/http\r\nContent-ID: <response-{content_id}>\r\n\r\n"
            f"HTTP/1.1 {response.status} {reason}\r\n{headers}Content-Length: {len(response.body)}\r\n\r\n")
    return head.encode() + response.body + b"\r\n"
