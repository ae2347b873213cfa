"""Fault switches and request counts of the mail sandboxes, seen from raw HTTP and from the SDKs, and the CLI."""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from pipelines.sandbox.mail import Account, FaultKind, Faults, GoogleServer, GraphServer
from tests.sandbox.mail_clients import google_service

REPO = Path(__file__).resolve().parents[2]


def get(server: GoogleServer | GraphServer, path: str, token: str) -> tuple[int, dict[str, str], bytes]:
    """One request on a fresh connection (so a cut connection cannot leak into the next test step)."""
    host, port = server.url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        connection.request("GET", path, headers={"Authorization": f"Bearer {token}"})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def test_faults_fire_in_arrival_order_after_skipping() -> None:
    faults = Faults()
    faults.inject(FaultKind.SERVER_ERROR, times=2, endpoint="a", skip=1, status=502)
    faults.inject(FaultKind.RATE_LIMIT, skip=2)
    kinds = {FaultKind.SERVER_ERROR, FaultKind.RATE_LIMIT}
    fired = [getattr(faults.take(endpoint, kinds), "kind", None) for endpoint in ("b", "a", "a", "a", "a", "b")]
    assert fired == [None, None, FaultKind.SERVER_ERROR, FaultKind.SERVER_ERROR, FaultKind.RATE_LIMIT, None]
    assert faults.fired == {"server_error": 2, "server_error:a": 2, "rate_limit": 1, "rate_limit:a": 1}
    assert faults.armed == []
    faults.inject("slow", delay=0.01)
    assert faults.take("x", {FaultKind.RATE_LIMIT}) is None and len(faults.armed) == 1
    faults.clear()
    assert faults.armed == []
    with pytest.raises(ValueError):
        faults.inject(FaultKind.SERVER_ERROR, status=404)
    with pytest.raises(ValueError):
        faults.inject(FaultKind.DROP, times=0)


def test_provider_error_bodies(google: GoogleServer, graph: GraphServer, accounts: list[Account]) -> None:
    token = accounts[0].token
    google.faults.inject(FaultKind.RATE_LIMIT, retry_after=7)
    status, headers, body = get(google, "/gmail/v1/users/me/profile", token)
    assert status == 429 and headers["Retry-After"] == "7"
    assert json.loads(body)["error"]["errors"][0]["reason"] == "rateLimitExceeded"
    status, headers, body = get(google, "/gmail/v1/users/me/profile", "wrong")
    assert status == 401 and "invalid_token" in headers["WWW-Authenticate"]
    assert json.loads(body)["error"]["status"] == "UNAUTHENTICATED"
    status, _, body = get(google, f"/gmail/v1/users/{accounts[1].email}/profile", token)
    assert status == 403 and "Delegation denied" in json.loads(body)["error"]["message"]

    graph.faults.inject(FaultKind.SERVER_ERROR, status=504, retry_after=2)
    status, headers, body = get(graph, "/v1.0/me", token)
    assert status == 504 and headers["Retry-After"] == "2" and json.loads(body)["error"]["code"] == "GatewayTimeout"
    status, _, body = get(graph, f"/v1.0/users/{accounts[1].user_id}", token)
    assert status == 200 and json.loads(body)["mail"] == accounts[1].email
    status, _, body = get(graph, "/v1.0/me/mailFolders", token)
    folders = json.loads(body)["value"]
    assert [f["displayName"] for f in folders] == ["Inbox", "Sent Items", "Archive"]
    assert sum(f["totalItemCount"] for f in folders) == len(accounts[0].messages)
    assert graph.http_requests == {"graph.users.get": 2, "graph.mailFolders.list": 1}


def test_transport_faults(google: GoogleServer, accounts: list[Account]) -> None:
    token = accounts[0].token
    google.faults.inject(FaultKind.DROP, endpoint="gmail.users.getProfile")
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
        get(google, "/gmail/v1/users/me/profile", token)
    google.faults.inject(FaultKind.TRUNCATE, endpoint="gmail.users.getProfile")
    with pytest.raises((http.client.IncompleteRead, ConnectionError)):
        get(google, "/gmail/v1/users/me/profile", token)
    google.faults.inject(FaultKind.SLOW, delay=0.3)
    started = time.perf_counter()
    assert get(google, "/gmail/v1/users/me/profile", token)[0] == 200
    assert time.perf_counter() - started >= 0.3
    assert google.http_requests["gmail.users.getProfile"] == 3 and google.faults.fired["drop"] == 1

    # The SDK side: httplib2 resends a request whose connection was cut before the answer by itself.
    gmail = google_service(google, accounts[0])
    google.faults.inject(FaultKind.DROP, endpoint="gmail.users.labels.list")
    labels = gmail.users().labels().list(userId="me").execute()["labels"]
    assert {"INBOX", "SENT", "Label_1"} <= {label["id"] for label in labels}
    assert google.http_requests["gmail.users.labels.list"] == 2


def test_cli_serves_until_terminated() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "pipelines.sandbox.mail", "--accounts", "2", "--messages", "30", "--contacts", "5"],
        cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        info = json.loads(process.stdout.readline())
        account = info["accounts"][1]
        assert account["messages"] == 30 and info["gmail_batch_url"].endswith("/batch/gmail/v1")
        request = urllib.request.Request(f"{info['google_url']}/gmail/v1/users/me/profile",
                                         headers={"Authorization": f"Bearer {account['token']}"})
        with urllib.request.urlopen(request, timeout=10) as response:
            assert json.loads(response.read())["emailAddress"] == account["email"]
        request = urllib.request.Request(f"{info['graph_url']}/users/{account['graph_user_id']}",
                                         headers={"Authorization": f"Bearer {account['token']}"})
        with urllib.request.urlopen(request, timeout=10) as response:
            assert json.loads(response.read())["mail"] == account["email"]
    finally:
        process.terminate()
        assert process.wait(timeout=10) == 0
