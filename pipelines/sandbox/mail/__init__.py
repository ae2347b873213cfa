"""Local wire-level sandboxes of the mail and contacts APIs the platform syncs, for the official SDKs unchanged.

`GoogleServer` serves Gmail v1 (with batch) and People v1 connections; `GraphServer` serves Microsoft Graph
v1.0 Outlook mail and contacts delta queries. Both serve accounts from `build_accounts` (seeded and
deterministic), which tests change between syncs (`Account.add_messages`, `delete_messages`, `relabel`,
`add_contacts`, `update_contacts`, `delete_contacts`, `expire_cursors`), and both take fault switches at
runtime (`server.faults.inject(...)`, see `faults.py`) and count requests (`server.http_requests`, `server.calls`).

Pointing the SDKs at them (the only difference from the real APIs)::

    google.oauth2.credentials.Credentials(token=account.token)   # no refresh token: never calls Google
    gmail = build("gmail", "v1", credentials=creds, static_discovery=True,
                  client_options={"api_endpoint": google.url})
    people = build("people", "v1", credentials=creds, static_discovery=True,
                   client_options={"api_endpoint": google.url})
    batch = BatchHttpRequest(batch_uri=google.url + "/batch/gmail/v1")   # batches ignore api_endpoint

    adapter = GraphRequestAdapter(BaseBearerTokenAuthenticationProvider(StaticTokenProvider(account.token)))
    adapter.base_url = graph.url + "/v1.0"
    client = GraphServiceClient(request_adapter=adapter)

Run them standalone with `python -m pipelines.sandbox.mail` (prints the URLs and each account's token).
"""

from pipelines.sandbox.mail.faults import Fault, FaultKind, Faults
from pipelines.sandbox.mail.google_server import GoogleServer
from pipelines.sandbox.mail.graph_server import GraphServer, folder_of
from pipelines.sandbox.mail.mailbox import Account, Contact, Message, build_accounts

__all__ = [
    "Account", "Contact", "Fault", "FaultKind", "Faults", "GoogleServer", "GraphServer", "Message", "build_accounts",
    "folder_of",
]
