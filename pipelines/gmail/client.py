"""google-api-python-client set up for one connection: credentials from the registry, every HTTP request
counted, retries through the shared policy, and Gmail batch requests of up to 100 calls.

The SDK is the client; this module only configures it: `build(..., static_discovery=True)` with the
sandbox's `api_endpoint` when the connection is a sandbox one, and `BatchHttpRequest(batch_uri=...)` since
batches ignore `api_endpoint` (PROVIDERS.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import httplib2
from google.oauth2.credentials import Credentials
from google_auth_httplib2 import AuthorizedHttp
from googleapiclient.discovery import build
from googleapiclient.errors import HttpError
from googleapiclient.http import BatchHttpRequest, HttpRequest

from pipelines.connections.report import SyncReport
from pipelines.gmail.settings import BATCH_SIZE, GOOGLE_TOKEN_URI, HTTP_TIMEOUT_S
from pipelines.mail_common.retry import Retrier
from pipelines.mail_common.session import SyncSession


def status_of(exc: BaseException) -> tuple[int | None, float | None]:
    """Google's HttpError: its status and Retry-After (seconds) for the shared retry policy."""
    if isinstance(exc, HttpError):
        retry_after = exc.resp.get("retry-after") if exc.resp is not None else None
        return exc.status_code, float(retry_after) if retry_after and retry_after.isdigit() else None
    return None, None


def error_reason(exc: HttpError) -> str | None:
    """The ErrorInfo reason of a Google error (e.g. EXPIRED_SYNC_TOKEN), if any."""
    details = exc.error_details if isinstance(exc.error_details, list) else []
    return next((d.get("reason") for d in details if isinstance(d, dict) and d.get("reason")), None)


class CountingHttp(httplib2.Http):
    """httplib2 that counts every request it sends (batches count once, as on the wire)."""

    def __init__(self, report: SyncReport, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.report = report

    def request(self, *args: Any, **kwargs: Any):  # noqa: ANN201 - httplib2's signature
        self.report.http_requests += 1
        return super().request(*args, **kwargs)


@dataclass
class GoogleClients:
    gmail: Any
    people: Any
    http: AuthorizedHttp
    batch_uri: str
    retrier: Retrier

    def call(self, make: Callable[[], HttpRequest]) -> dict:
        """One request, built afresh for each try, retried under the shared policy."""
        return self.retrier.call(lambda: make().execute(num_retries=0))

    def batch(self, calls: dict[str, Callable[[], HttpRequest]], missing_ok: bool = True) -> dict[str, dict | None]:
        """Run calls in batches of up to 100 (one HTTP request each). Calls answered with a transient error
        are retried in the next round; a 404 answers None when `missing_ok` (a message deleted meanwhile)."""
        answers: dict[str, dict | None] = {}
        pending = list(calls)
        for attempt in range(self.retrier.policy.attempts):
            failed: list[str] = []
            wait: float | None = None
            for start in range(0, len(pending), BATCH_SIZE):
                chunk = pending[start:start + BATCH_SIZE]
                got: dict[str, Any] = {}

                def collect(request_id: str, response: Any, exception: Exception | None) -> None:
                    got[request_id] = exception if exception is not None else response

                def run(chunk: list[str] = chunk) -> None:
                    got.clear()
                    batch = BatchHttpRequest(callback=collect, batch_uri=self.batch_uri)
                    for key in chunk:
                        batch.add(calls[key](), request_id=key)
                    batch.execute(http=self.http)

                self.retrier.call(run)
                for key in chunk:
                    answer = got.get(key)
                    if not isinstance(answer, Exception):
                        answers[key] = answer
                        continue
                    if missing_ok and isinstance(answer, HttpError) and answer.status_code == 404:
                        answers[key] = None
                        continue
                    transient, retry_after = self.retrier.transient(answer)
                    if not transient:
                        raise answer
                    failed.append(key)
                    wait = retry_after if retry_after is not None else wait
            if not failed:
                return answers
            if attempt == self.retrier.policy.attempts - 1:
                raise RuntimeError(f"{len(failed)} batched calls still failing after {attempt + 1} rounds")
            self.retrier.wait(attempt, wait)
            pending = failed
        return answers


def google_clients(session: SyncSession) -> GoogleClients:
    """Gmail and People services for the session's connection."""
    tokens, apps = session.tokens, session.oauth
    if session.connection.sandbox:  # no refresh token: the credentials never call Google's token endpoint
        credentials = Credentials(token=tokens.access_token)
    else:
        credentials = Credentials(token=tokens.access_token, refresh_token=tokens.refresh_token,
                                  token_uri=GOOGLE_TOKEN_URI, client_id=apps.google_client_id,
                                  client_secret=apps.google_client_secret)
    http = AuthorizedHttp(credentials, http=CountingHttp(session.report, timeout=HTTP_TIMEOUT_S))
    options = {"api_endpoint": session.endpoints.google_api} if session.endpoints.google_api else None
    gmail = build("gmail", "v1", http=http, static_discovery=True, client_options=options)
    people = build("people", "v1", http=http, static_discovery=True, client_options=options)
    return GoogleClients(gmail, people, http, session.endpoints.google_batch, Retrier(session.report, status_of))
