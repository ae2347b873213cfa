"""The HTTP machinery both sandbox servers share: routing, accounts by token, fault injection, request counts.

Why it exists: the Google and Microsoft sandboxes differ only in their paths and wire formats. Everything
else — a threaded stdlib server on 127.0.0.1 (port 0 by default), keep-alive HTTP/1.1 as the SDKs use it,
selecting the account from the bearer token, applying armed faults (including cutting the connection),
counting requests per endpoint for benchmarks — lives here once. A provider server subclasses
`SandboxServer`, lists its routes and says how its errors look.

Two counters are kept: `http_requests` counts HTTP requests as they arrive on the socket (a Gmail batch of
100 calls is one), `calls` counts API calls (the batch's 100 parts each count under their own endpoint).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import socket
import struct
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from pipelines.sandbox.mail.faults import HTTP_KINDS, STATUS_KINDS, Fault, FaultKind, Faults
from pipelines.sandbox.mail.mailbox import Account

__all__ = [
    "ProviderError", "Request", "Response", "Route", "SandboxServer", "decode_cursor", "encode_cursor", "path_pattern",
]


@dataclass
class Request:
    """One API call, from the socket or from a batch part."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-case names
    body: bytes = b""
    endpoint: str = ""
    params: dict[str, str] = field(default_factory=dict)  # named groups of the route's path pattern
    account: Account | None = None
    raw_query: str = ""  # the query string as sent, for APIs whose parameters have a syntax of their own (Rest.li)

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[0] if values else default

    def args(self, name: str) -> list[str]:
        return self.query.get(name, [])

    @property
    def token(self) -> str | None:
        """The bearer token, else the `access_token` query parameter (how the Graph API SDK sends it)."""
        scheme, _, value = self.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
        return self.arg("access_token") or None


@dataclass
class Response:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
        body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
        return cls(status, body, {"Content-Type": "application/json; charset=UTF-8", **(headers or {})})


class ProviderError(Exception):
    """Raised by a handler to answer with an error response in the provider's format."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status)
        self.response = response


@dataclass(frozen=True)
class Route:
    method: str
    pattern: re.Pattern[str]
    endpoint: str
    handler: Callable[[Request], Response]
    authenticated: bool = True


def encode_cursor(state: dict[str, Any]) -> str:
    """Opaque page tokens, history-free cursors: the state itself, as unpadded base64url JSON."""
    return base64.urlsafe_b64encode(json.dumps(state, separators=(",", ":")).encode()).rstrip(b"=").decode()


def decode_cursor(token: str) -> dict[str, Any] | None:
    """The state of a cursor made by `encode_cursor`, or None when the token is not one."""
    try:
        state = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (binascii.Error, ValueError):
        return None
    return state if isinstance(state, dict) else None


class SandboxServer:
    """A provider sandbox on 127.0.0.1: `with Server(accounts) as server: server.url ...`.

    Subclasses implement `routes()` and the error bodies (`unauthenticated`, `rate_limited`, `unavailable`,
    `not_found`); the Retry-After header is added here.
    """

    name = "sandbox"

    def __init__(self, accounts: Sequence[Account], host: str = "127.0.0.1", port: int = 0) -> None:
        if not accounts:
            raise ValueError("a sandbox server needs at least one account")
        self.accounts = list(accounts)
        self._by_token = {account.token: account for account in self.accounts}
        self.faults = Faults()
        self.http_requests: Counter[str] = Counter()
        self.calls: Counter[str] = Counter()
        self._count_lock = threading.Lock()
        self._routes = self.routes()
        self._host, self._port = host, port
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------------------------

    def start(self) -> SandboxServer:
        handler = type(f"{type(self).__name__}Handler", (_Handler,), {"sandbox": self})
        self._httpd = _HTTPServer((self._host, self._port), handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), name=f"{self.name}-server",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """Base URL, e.g. http://127.0.0.1:54321 (no trailing slash)."""
        if self._httpd is None:
            raise RuntimeError("server not started")
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    # -- what a provider defines -----------------------------------------------------------------------------

    def routes(self) -> list[Route]:
        raise NotImplementedError

    def unauthenticated(self) -> Response:
        raise NotImplementedError

    def rate_limited(self) -> Response:
        raise NotImplementedError

    def unavailable(self, status: int) -> Response:
        raise NotImplementedError

    def not_found(self, request: Request) -> Response:
        raise NotImplementedError

    # -- shared helpers for handlers -------------------------------------------------------------------------

    def account(self, token: str | None) -> Account | None:
        return self._by_token.get(token or "")

    def account_by_user(self, user: str) -> Account | None:
        """An account by its e-mail address or directory id (case-insensitive)."""
        wanted = user.lower()
        return next((a for a in self.accounts if wanted in (a.email.lower(), a.user_id.lower())), None)

    def cursor_fault(self, request: Request) -> bool:
        """True when an armed EXPIRED_CURSOR fault hits this request (call only when it carries a cursor)."""
        return self.faults.take(request.endpoint, (FaultKind.EXPIRED_CURSOR,)) is not None

    def reset_counts(self) -> None:
        with self._count_lock:
            self.http_requests.clear()
            self.calls.clear()

    # -- dispatch ----------------------------------------------------------------------------------------------

    def route(self, request: Request) -> Route | None:
        """The route serving `request` (and its endpoint name and path parameters set on it), if any."""
        for route in self._routes:
            match = route.pattern.fullmatch(request.path)
            if match and route.method == request.method:
                request.endpoint = route.endpoint
                request.params = {k: urllib.parse.unquote(v) for k, v in match.groupdict().items() if v is not None}
                return route
        request.endpoint = "unknown"
        return None

    def call(self, request: Request, route: Route | None, fault: Fault | None = None) -> Response:
        """Answer one API call: a status fault if one hits, else authenticate and run the handler.

        Handlers take the lock of the account they read (it may differ from the token's: Graph's /users/{id}).
        """
        with self._count_lock:
            self.calls[request.endpoint] += 1
        if fault is not None:
            if fault.kind is FaultKind.EXPIRED_TOKEN:
                return self.unauthenticated()
            response = self.rate_limited() if fault.kind is FaultKind.RATE_LIMIT else self.unavailable(fault.status)
            retry_after = fault.retry_after or (1 if fault.kind is FaultKind.RATE_LIMIT else None)
            if retry_after:
                response.headers["Retry-After"] = str(retry_after)
            return response
        if route is None:
            return self.not_found(request)
        if route.authenticated:
            request.account = self.account(request.token)
            if request.account is None:
                return self.unauthenticated()
        try:
            return route.handler(request)
        except ProviderError as error:
            return error.response

    def call_part(self, request: Request) -> Response:
        """A call inside a batch: routed and counted like any call; only status faults can hit it."""
        route = self.route(request)
        return self.call(request, route, self.faults.take(request.endpoint, STATUS_KINDS))


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class _Handler(BaseHTTPRequestHandler):
    """Parses the request, applies transport faults, writes the response with an exact Content-Length."""

    sandbox: SandboxServer
    protocol_version = "HTTP/1.1"
    timeout = 60  # idle keep-alive connections end after a minute
    # Headers and body go out in separate writes: with Nagle's algorithm the body waits for the client's
    # delayed ACK (40 ms on Linux) on every keep-alive request.
    disable_nagle_algorithm = True

    def setup(self) -> None:
        super().setup()
        # Headers and body leave in separate writes: without this, Nagle's algorithm holds the body back until
        # the client's delayed ACK (40 ms per response on Linux).
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the stdlib's signature
        return None

    def _serve(self) -> None:
        sandbox = self.sandbox
        parsed = urllib.parse.urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        request = Request(
            method=self.command, path=parsed.path, query=urllib.parse.parse_qs(parsed.query, keep_blank_values=True),
            headers={k.lower(): v for k, v in self.headers.items()}, body=self.rfile.read(length) if length else b"",
            raw_query=parsed.query,
        )
        route = sandbox.route(request)
        with sandbox._count_lock:
            sandbox.http_requests[request.endpoint] += 1
        fault = sandbox.faults.take(request.endpoint, HTTP_KINDS)
        if fault is not None and fault.kind is FaultKind.DROP:
            self._cut()
            return
        if fault is not None and fault.kind is FaultKind.SLOW:
            time.sleep(fault.delay)
        response = sandbox.call(request, route, fault if fault is not None and fault.kind in STATUS_KINDS else None)
        self._write(response, truncate=fault is not None and fault.kind is FaultKind.TRUNCATE)

    def _write(self, response: Response, truncate: bool) -> None:
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if truncate:
            self.wfile.write(response.body[: len(response.body) // 2])
            self.wfile.flush()
            self._cut()
            return
        self.wfile.write(response.body)

    def _cut(self) -> None:
        """Close the socket at once (RST rather than a graceful FIN), as a crashed proxy would."""
        self.close_connection = True
        try:
            self.wfile.flush()
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def path_pattern(template: str) -> re.Pattern[str]:
    """`/users/{user}/messages/{id}` -> a regex with named groups matching one path segment each."""
    return re.compile(re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(template)))
