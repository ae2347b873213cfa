"""Wire-level sandbox of Microsoft Graph v1.0 for Outlook mail and contacts, delta queries included.

Why it exists: the Outlook dlt source runs msgraph-sdk unchanged against this server (adapter base_url
pointed here), so its delta paging, removal handling, throttling retries and full-resync path are exercised
over real HTTP.

What is served (`{user}` paths select the account by id or address with any valid token, as an app-only
token does; `/me` paths use the token's account; the SDK rewrites `users/me-token-to-replace` to `/me`):
  GET /v1.0/{me|users/{user}}                                      the user (id, mail, displayName, ...)
  GET /v1.0/{me|users/{user}}/mailFolders                          inbox, sentitems, archive
  GET /v1.0/{me|users/{user}}/mailFolders/{folder}/messages/delta()   folder: a well-known name or a folder id
  GET /v1.0/{me|users/{user}}/contacts/delta()
Delta semantics: the first round lists what is in the collection now; every page carries an absolute
`@odata.nextLink` (`$skiptoken`), the last an absolute `@odata.deltaLink` (`$deltatoken`). A delta link
returns what changed since it was issued: current items (added, moved in, updated) and
`{"id": ..., "@removed": {"reason": "deleted"}}` for items deleted or moved out. Page size: the
`Prefer: odata.maxpagesize=N` header (answered with Preference-Applied), else 10. `$select` and
`changeType=created|updated|deleted` are honoured and carried in the links. An expired delta link answers
410 Gone with error code `syncStateNotFound`, and the client must start a full round again.

Folders are derived from the account's Gmail-style labels (see `folder_of`); user labels become categories.
"""

from __future__ import annotations

import base64
import bisect
import datetime as dt
import itertools
import re
import uuid
from typing import Any

from pipelines.sandbox.mail.http import (
    ProviderError, Request, Response, Route, SandboxServer, decode_cursor, encode_cursor,
)
from pipelines.sandbox.mail.mailbox import USER_LABELS, Account, Contact, Message

__all__ = ["GraphServer", "folder_of", "graph_contact_id", "graph_message_id"]

_USER = r"/v1\.0/(?:me|users/(?P<user>[^/]+))"
_DELTA = r"(?:microsoft\.graph\.)?delta(?:\(\))?"
_FOLDERS = {"inbox": "Inbox", "sentitems": "Sent Items", "archive": "Archive"}
_DEFAULT_PAGE = 10
_MAX_PAGE = 1000
_MAX_PREVIEW = 255
_CONTEXT = "https://graph.microsoft.com/v1.0/$metadata#Collection({})"


def folder_of(message: Message) -> str:
    """The Outlook folder of a Gmail-style message: sent mail in Sent Items, INBOX in Inbox, else Archive."""
    if "SENT" in message.labels:
        return "sentitems"
    return "inbox" if "INBOX" in message.labels else "archive"


def _opaque(prefix: str, *parts: str) -> str:
    """An Exchange-looking id: a fixed prefix and base64url of what identifies the item."""
    return prefix + base64.urlsafe_b64encode(":".join(parts).encode()).decode()


def _iso(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms // 1000, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _etag(seq: int) -> str:
    return "CQAAABYAAAA" + base64.b64encode(seq.to_bytes(8, "big")).decode()


class GraphServer(SandboxServer):
    """Microsoft Graph sandbox. `with GraphServer(build_accounts()) as graph: graph.url + "/v1.0"`."""

    name = "graph"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._request_ids = itertools.count(1)

    def routes(self) -> list[Route]:
        return [
            Route("GET", re.compile(_USER), "graph.users.get", self._user_get),
            Route("GET", re.compile(f"{_USER}/mailFolders"), "graph.mailFolders.list", self._folders),
            Route("GET", re.compile(f"{_USER}/mailFolders/(?P<folder>[^/]+)/messages/{_DELTA}"),
                  "graph.messages.delta", self._messages_delta),
            Route("GET", re.compile(f"{_USER}/contacts/{_DELTA}"), "graph.contacts.delta", self._contacts_delta),
        ]

    # -- errors ------------------------------------------------------------------------------------------------

    def error(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
        """Graph's error body (what kiota turns into an ODataError with `.error.code`)."""
        inner = {"date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S"),
                 "request-id": str(uuid.UUID(int=next(self._request_ids))), "client-request-id": ""}
        return Response.json({"error": {"code": code, "message": message, "innerError": inner}}, status, headers)

    def unauthenticated(self) -> Response:
        return self.error(401, "InvalidAuthenticationToken", "Lifetime validation failed, the token is expired.",
                          {"WWW-Authenticate": 'Bearer realm="", authorization_uri="https://login.microsoftonline.com/'
                                               'common/oauth2/authorize", client_id="00000003-0000-0000-c000-000000000000"'})

    def rate_limited(self) -> Response:
        return self.error(429, "TooManyRequests", "Application is over its MailboxConcurrency limit.")

    def unavailable(self, status: int) -> Response:
        code = {500: "InternalServerError", 502: "BadGateway", 503: "ServiceUnavailable", 504: "GatewayTimeout"}
        return self.error(status, code.get(status, "ServiceUnavailable"), "The service is temporarily unavailable.")

    def not_found(self, request: Request) -> Response:
        return self.error(400, "BadRequest", f"Resource not found for the segment '{request.path.rsplit('/', 1)[-1]}'.")

    # -- handlers ------------------------------------------------------------------------------------------------

    def _target(self, request: Request) -> Account:
        """`/users/{user}`: that account (any valid token, like an app-only token); `/me`: the token's account."""
        user = request.params.get("user")
        if user is None:
            assert request.account is not None
            return request.account
        account = self.account_by_user(user)
        if account is None:
            raise ProviderError(self.error(404, "ErrorInvalidUser", f"The requested user '{user}' is invalid."))
        return account

    def _user_get(self, request: Request) -> Response:
        account = self._target(request)
        given, _, family = account.display_name.partition(" ")
        return Response.json({
            "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#users/$entity", "id": account.user_id,
            "displayName": account.display_name, "givenName": given, "surname": family, "mail": account.email,
            "userPrincipalName": account.email,
        })

    def _folders(self, request: Request) -> Response:
        account = self._target(request)
        with account.lock:
            counts = {name: [0, 0] for name in _FOLDERS}
            for message in account.messages.values():
                tally = counts[folder_of(message)]
                tally[0] += 1
                tally[1] += "UNREAD" in message.labels
        root = _opaque("AAMkAGRv", account.user_id, "root")
        return Response.json({"@odata.context": _CONTEXT.format("mailFolder"), "value": [
            {"id": _folder_id(account, name), "displayName": label, "parentFolderId": root, "childFolderCount": 0,
             "unreadItemCount": counts[name][1], "totalItemCount": counts[name][0], "isHidden": False}
            for name, label in _FOLDERS.items()]})

    def _messages_delta(self, request: Request) -> Response:
        account = self._target(request)
        wanted = request.params["folder"].strip("()'\"")
        folder = next((name for name in _FOLDERS
                       if wanted.lower() == name or wanted == _folder_id(account, name)), None)
        if folder is None:
            raise ProviderError(self.error(404, "ErrorItemNotFound", "The specified object was not found in the store."))
        return self._delta(request, account, f"messages:{folder}")

    def _contacts_delta(self, request: Request) -> Response:
        return self._delta(request, self._target(request), "contacts")

    # -- delta rounds --------------------------------------------------------------------------------------------

    def _delta(self, request: Request, account: Account, resource: str) -> Response:
        """One page of a delta round. Cursor state (see module doc) travels in $skiptoken / $deltatoken."""
        skip, delta = request.arg("$skiptoken"), request.arg("$deltatoken")
        prefer = _max_page_size(request.headers.get("prefer", ""))
        with account.lock:
            if skip or delta:
                state = decode_cursor(skip or delta or "")
                if state is None or state.get("a") != account.index or state.get("r") != resource:
                    raise ProviderError(self.error(400, "BadRequest", "The delta or skip token is not valid."))
                base = state["s"] if state["s"] is not None else state["u"]
                if account.is_expired(base) or (delta and self.cursor_fault(request)):
                    raise ProviderError(self.error(
                        410, "syncStateNotFound",
                        "The sync state generation is not found. The delta token is expired and data must be "
                        "synchronized again."))
                if delta:  # a new incremental round: changes since the link was issued, up to now
                    state = {**state, "u": account.history_id, "k": None}
            else:
                select = [f for f in (request.arg("$select") or "").split(",") if f]
                state = {"a": account.index, "r": resource, "s": None, "u": account.history_id, "k": None,
                         "sel": select, "ct": request.arg("changeType"), "n": _DEFAULT_PAGE}
            size = prefer or state["n"]
            items, cursor = (self._full_round(account, resource, state, size) if state["s"] is None
                             else self._changes(account, resource, state, size))
        body: dict[str, Any] = {"@odata.context": _CONTEXT.format(resource.split(":")[0][:-1]), "value": items}
        if cursor is not None:
            body["@odata.nextLink"] = self._link(request, "$skiptoken", {**state, "k": cursor, "n": size})
        else:
            body["@odata.deltaLink"] = self._link(
                request, "$deltatoken", {"a": account.index, "r": resource, "s": state["u"], "sel": state["sel"],
                                         "ct": state["ct"], "n": size})
        headers = {"Preference-Applied": f"odata.maxpagesize={prefer}"} if prefer else None
        return Response.json(body, headers=headers)

    def _link(self, request: Request, name: str, state: dict[str, Any]) -> str:
        """An absolute link on the path the client called (so /me stays /me), carrying only the token."""
        return f"{self.url}{request.path}?{name}={encode_cursor(state)}"

    def _full_round(self, account: Account, resource: str, state: dict[str, Any],
                    size: int) -> tuple[list[dict[str, Any]], Any]:
        """Items in the collection now, in a stable order, from the cursor on; (items, next cursor or None)."""
        items: list[dict[str, Any]] = []
        if resource == "contacts":
            ids = account.contact_ids()
            start = bisect.bisect_right(ids, state["k"]) if state["k"] else 0
            page = ids[start:start + size]
            items = [_contact(account, account.contacts[i], state["sel"]) for i in page]
            return items, (page[-1] if start + size < len(ids) else None)
        folder = resource.split(":")[1]
        order = account.newest_first()
        start = bisect.bisect_right(order, tuple(state["k"])) if state["k"] else 0
        last: tuple[int, str] | None = None
        for key in itertools.islice(order, start, None):
            message = account.messages[key[1]]
            if folder_of(message) != folder:
                continue
            if len(items) == size and last is not None:
                return items, list(last)
            items.append(_message(account, message, state["sel"]))
            last = key
        return items, None

    def _changes(self, account: Account, resource: str, state: dict[str, Any],
                 size: int) -> tuple[list[dict[str, Any]], Any]:
        """What changed in `(s, u]`: current items and removals, paged by offset (the list is deterministic)."""
        kind, _, folder = resource.partition(":")
        member = (lambda r: isinstance(r, Contact)) if kind == "contacts" else (
            lambda r: isinstance(r, Message) and folder_of(r) == folder)
        wanted = state["ct"]
        entries: list[dict[str, Any]] = []
        for before, after in account.net_changes(kind[:-1], state["s"], state["u"]).values():
            if member(after):
                change = "updated" if member(before) else "created"
                if wanted in (None, change):
                    entries.append(_contact(account, after, state["sel"]) if isinstance(after, Contact)
                                   else _message(account, after, state["sel"]))
            elif member(before) and wanted in (None, "deleted"):
                entries.append(_removed(account, before))
        offset = state["k"] or 0
        return entries[offset:offset + size], (offset + size if offset + size < len(entries) else None)


def _max_page_size(prefer: str) -> int | None:
    match = re.search(r"odata\.maxpagesize\s*=\s*(\d+)", prefer)
    return max(1, min(_MAX_PAGE, int(match.group(1)))) if match else None


def _folder_id(account: Account, name: str) -> str:
    return _opaque("AAMkAGZv", account.user_id, name)


def graph_message_id(account: Account, message_id: str) -> str:
    """The Graph id of a mailbox message (tests map SDK results back to the model with it)."""
    return _opaque("AAMkAGI2", account.user_id, message_id)


def graph_contact_id(account: Account, contact_id: str) -> str:
    """The Graph id of a contact."""
    return _opaque("AAMkAGNv", account.user_id, contact_id)


def _selected(item: dict[str, Any], select: list[str]) -> dict[str, Any]:
    if not select:
        return item
    keep = {"@odata.type", "@odata.etag", "id", *select}
    return {k: v for k, v in item.items() if k in keep}


def _recipient(name: str, address: str) -> dict[str, Any]:
    return {"emailAddress": {"name": name, "address": address}}


def _message(account: Account, message: Message, select: list[str]) -> dict[str, Any]:
    change_key = _etag(message.history_id)
    body = {"contentType": "html", "content": message.html} if message.html else {"contentType": "text",
                                                                                    "content": message.text}
    sender = _recipient(message.sender.name, message.sender.email)
    return _selected({
        "@odata.type": "#microsoft.graph.message", "@odata.etag": f'W/"{change_key}"',
        "id": graph_message_id(account, message.id),
        "createdDateTime": _iso(message.internal_date), "lastModifiedDateTime": _iso(message.modified),
        "changeKey": change_key, "categories": sorted(USER_LABELS[lab] for lab in message.labels if lab in USER_LABELS),
        "receivedDateTime": _iso(message.internal_date), "sentDateTime": _iso(message.internal_date),
        "hasAttachments": False, "internetMessageId": message.message_id_header, "subject": message.subject,
        "bodyPreview": " ".join(message.text.split())[:_MAX_PREVIEW],
        "importance": "high" if "IMPORTANT" in message.labels else "normal",
        "parentFolderId": _folder_id(account, folder_of(message)),
        "conversationId": _opaque("AAQkAGI2", account.user_id, message.thread_id),
        "isDeliveryReceiptRequested": False, "isReadReceiptRequested": False,
        "isRead": "UNREAD" not in message.labels, "isDraft": False, "inferenceClassification": "focused",
        "body": body, "sender": sender, "from": sender,
        "toRecipients": [_recipient(a.name, a.email) for a in message.to],
        "ccRecipients": [_recipient(a.name, a.email) for a in message.cc], "bccRecipients": [], "replyTo": [],
        "flag": {"flagStatus": "flagged" if "STARRED" in message.labels else "notFlagged"},
    }, select)


def _contact(account: Account, contact: Contact, select: list[str]) -> dict[str, Any]:
    change_key = _etag(contact.version)
    phones = [display for _, display in contact.phones]
    return _selected({
        "@odata.type": "#microsoft.graph.contact", "@odata.etag": f'W/"{change_key}"',
        "id": graph_contact_id(account, contact.id),
        "createdDateTime": _iso(contact.created), "lastModifiedDateTime": _iso(contact.updated),
        "changeKey": change_key, "categories": [], "parentFolderId": _folder_id(account, "contacts"),
        "displayName": contact.display_name, "givenName": contact.given_name, "surname": contact.family_name,
        "fileAs": "", "companyName": contact.company or None,
        "emailAddresses": [{"name": contact.display_name, "address": e} for e in contact.emails],
        "mobilePhone": phones[0] if phones else None, "businessPhones": phones[1:], "homePhones": [],
    }, select)


def _removed(account: Account, record: Message | Contact) -> dict[str, Any]:
    if isinstance(record, Contact):
        return {"@odata.type": "#microsoft.graph.contact", "id": graph_contact_id(account, record.id),
                "@removed": {"reason": "deleted"}}
    return {"@odata.type": "#microsoft.graph.message", "id": graph_message_id(account, record.id),
            "@removed": {"reason": "deleted"}}
