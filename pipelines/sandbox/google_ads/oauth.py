"""Google's OAuth 2.0 token endpoint on 127.0.0.1, for the refresh the google-ads client's credentials make.

google-auth refreshes an access token by POSTing `grant_type=refresh_token`, the refresh token and the OAuth
client to the credentials' `token_uri`; pointing that at `OAuthTokenSandbox.token_uri` is the only difference
from Google. Answers as Google's endpoint does: a new bearer token (which the Ads sandbox then accepts), 401
`invalid_client` for a wrong OAuth client, 400 `invalid_grant` ("Token has been expired or revoked.") for a
refresh token the user revoked or that never existed. Requests are counted by outcome.
"""

from __future__ import annotations

import itertools
import json
import threading
import urllib.parse
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from pipelines.sandbox.google_ads.server import GoogleAdsSandbox

CLIENT_ID = "sandbox-oauth-client.apps.googleusercontent.com"
CLIENT_SECRET = "sandbox-oauth-client-secret"
REFRESH_TOKEN = "sandbox-google-ads-refresh-token"
SCOPE = "https://www.googleapis.com/auth/adwords"
EXPIRES_IN_S = 3599


class OAuthTokenSandbox:
    """`with OAuthTokenSandbox(ads) as oauth: oauth.token_uri` — tokens it issues are valid on `ads`."""

    def __init__(self, ads: GoogleAdsSandbox, *, refresh_tokens: tuple[str, ...] = (REFRESH_TOKEN,),
                 client_id: str = CLIENT_ID, client_secret: str = CLIENT_SECRET) -> None:
        self.ads = ads
        self.refresh_tokens = set(refresh_tokens)
        self.client = (client_id, client_secret)
        self.requests: Counter[str] = Counter()  # "refreshed", "invalid_grant", "invalid_client", ...
        self._issued = itertools.count(1)
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def token_uri(self) -> str:
        assert self._server is not None, "start the sandbox first"
        return f"http://127.0.0.1:{self._server.server_port}/token"

    def revoke(self, refresh_token: str) -> None:
        """The user removes the app's access in their Google account: the refresh token stops working."""
        with self._lock:
            self.refresh_tokens.discard(refresh_token)

    def start(self) -> OAuthTokenSandbox:
        sandbox = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
                length = int(self.headers.get("Content-Length") or 0)
                form = urllib.parse.parse_qs(self.rfile.read(length).decode())
                status, body = sandbox._answer(self.path, {k: v[0] for k, v in form.items()})
                payload = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: object) -> None:  # requests carry tokens: never logged
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="google-oauth-sandbox", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> OAuthTokenSandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _answer(self, path: str, form: dict[str, str]) -> tuple[int, dict[str, object]]:
        with self._lock:
            if path != "/token":
                self.requests["not_found"] += 1
                return 404, {"error": "not_found"}
            if (form.get("client_id"), form.get("client_secret")) != self.client:
                self.requests["invalid_client"] += 1
                return 401, {"error": "invalid_client", "error_description": "The OAuth client was not found."}
            if form.get("grant_type") != "refresh_token":
                self.requests["unsupported_grant_type"] += 1
                return 400, {"error": "unsupported_grant_type", "error_description": "Invalid grant_type."}
            if form.get("refresh_token") not in self.refresh_tokens:
                self.requests["invalid_grant"] += 1
                return 400, {"error": "invalid_grant", "error_description": "Token has been expired or revoked."}
            self.requests["refreshed"] += 1
            token = f"sandbox-google-ads-access-token-{next(self._issued)}"
        self.ads.access_tokens.add(token)
        return 200, {"access_token": token, "expires_in": EXPIRES_IN_S, "scope": SCOPE, "token_type": "Bearer"}
