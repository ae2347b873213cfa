"""A mail platform in a tmp folder: seeded sandbox accounts on real local servers, a connection registry,
a real keyring and DuckDB warehouse; syncs run the real sources with the real SDKs (nothing mocked)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pipelines.connections.report import SyncReport
from pipelines.gmail import gmail_source
from pipelines.gmail.settings import DATASET_NAME as GMAIL_DATASET
from pipelines.mail_common.endpoints import Endpoints, OAuthApps
from pipelines.mail_common.sandbox import seed_connections
from pipelines.mail_common.session import sync_connection
from pipelines.outlook import outlook_source
from pipelines.outlook.settings import DATASET_NAME as OUTLOOK_DATASET
from pipelines.sandbox.mail import Account, GoogleServer, GraphServer, build_accounts, folder_of
from pipelines.sandbox.mail.graph_server import graph_message_id
from tests.conftest import DataFolder

PLAN = (("ws_0001", "gmail", 0), ("ws_0001", "outlook", 1), ("ws_0002", "gmail", 2))
GMAIL, OUTLOOK, GMAIL_2 = "ws_0001-gmail-0", "ws_0001-outlook-1", "ws_0002-gmail-2"
GMAIL_RECIPIENTS, OUTLOOK_RECIPIENTS = "raw_gmail.gmail_message_recipients", "raw_outlook.outlook_message_recipients"
SOURCES = {"gmail": (gmail_source, "gmail", GMAIL_DATASET), "outlook": (outlook_source, "outlook", OUTLOOK_DATASET)}


@dataclass
class MailPlatform(DataFolder):
    accounts: list[Account]
    google: GoogleServer
    graph: GraphServer

    @property
    def endpoints(self) -> Endpoints:
        return Endpoints(self.google.url, f"{self.google.url}/batch/gmail/v1", f"{self.graph.url}/v1.0")

    def sync(self, connection_id: str) -> SyncReport:
        registry = self.registry
        connection = registry.get(connection_id)
        make, name, dataset = SOURCES[connection.provider]
        with self.keyring() as cipher:
            return sync_connection(registry, cipher, connection, make, pipeline_name=name, dataset=dataset,
                                   endpoints=self.endpoints, oauth=OAuthApps(), warehouse_path=self.warehouse,
                                   dlt_dir=self.dlt_dir, work_dir=self.work_dir)

    def held(self, table: str, connection_id: str, columns: str = "message_id") -> list[tuple]:
        return self.query(f"SELECT {columns} FROM {table} WHERE connection_id = ? ORDER BY 1", [connection_id])

    def decrypted(self, table: str, connection_id: str, column: str, key: str = "message_id") -> dict[str, Any]:
        """id -> plaintext of one personal column, decrypted with the stored subject references."""
        rows = self.query(f"SELECT {key}, workspace_id, subject_ref, {column} FROM {table} WHERE connection_id = ?",
                          [connection_id])
        with self.keyring() as cipher:
            plain = cipher.decrypt_many([r[1] for r in rows], [r[2] for r in rows], [r[3] for r in rows],
                                        f"{table.split('.')[1]}.{column}").to_pylist()
        return {r[0]: p for r, p in zip(rows, plain)}

    def recipients(self, table: str, connection_id: str) -> list[tuple[str, str, int, str]]:
        """(message_id, role, position, address) of the stored recipient rows, decrypted; asserts each row is
        keyed to its own recipient (subject reference = blind index of the address)."""
        rows = self.query(f"SELECT message_id, role, position, workspace_id, subject_ref, address_bidx, address "
                          f"FROM {table} WHERE connection_id = ? ORDER BY 1, 2, 3", [connection_id])
        with self.keyring() as cipher:
            plain = cipher.decrypt_many([r[3] for r in rows], [r[4] for r in rows], [r[6] for r in rows],
                                        f"{table.split('.')[1]}.address").to_pylist()
            own = cipher.blind_index_many([r[3] for r in rows], plain, kind="user.contact.email").to_pylist()
        assert [bytes(r[4]) for r in rows] == own and [bytes(r[5]) for r in rows] == own
        return [(r[0], r[1], r[2], p) for r, p in zip(rows, plain)]


def expected_recipients(account: Account, gmail: bool) -> list[tuple[str, str, int, str]]:
    """(message_id, role, position, address) rows the account's synced messages must give."""
    rows = []
    for message in account.messages.values():
        if not gmail and folder_of(message) not in ("inbox", "sentitems"):
            continue  # Outlook syncs the Inbox and Sent Items
        mid = message.id if gmail else graph_message_id(account, message.id)
        for role, addresses in (("to", message.to), ("cc", message.cc)):
            rows += [(mid, role, i, a.email.lower()) for i, a in enumerate(addresses)]
    return sorted(rows)


def labels_of(platform: MailPlatform, connection_id: str) -> dict[str, list[str]]:
    return {i: json.loads(labels) for i, labels in platform.held("raw_gmail.gmail_messages", connection_id,
                                                                  "message_id, label_ids")}


@pytest.fixture
def mail(tmp_path: Path) -> Iterator[MailPlatform]:
    accounts = build_accounts(3, messages=250, contacts=40, seed=5)
    with GoogleServer(accounts) as google, GraphServer(accounts) as graph:
        platform = MailPlatform(tmp_path / "data", accounts, google, graph)
        with platform.keyring() as cipher:
            seed_connections(platform.registry, cipher, accounts, PLAN)
        yield platform
