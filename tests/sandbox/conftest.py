"""Fixtures for the mail sandboxes: fresh seeded accounts and servers per test (tests mutate them)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pipelines.sandbox.mail import Account, GoogleServer, GraphServer, build_accounts

MAIL_SEED = 11


@pytest.fixture
def accounts() -> list[Account]:
    return build_accounts(2, messages=1200, contacts=150, seed=MAIL_SEED)


@pytest.fixture
def google(accounts: list[Account]) -> Iterator[GoogleServer]:
    with GoogleServer(accounts) as server:
        yield server


@pytest.fixture
def graph(accounts: list[Account]) -> Iterator[GraphServer]:
    with GraphServer(accounts) as server:
        yield server
