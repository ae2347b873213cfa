"""msgraph-sdk against the Graph sandbox, over real HTTP: full delta rounds over several pages, incremental
rounds after mutations (with @removed), throttling retried by the SDK's RetryHandler, expired delta links."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from kiota_abstractions.base_request_configuration import RequestConfiguration
from msgraph.generated.models.o_data_errors.o_data_error import ODataError

from pipelines.sandbox.mail import Account, FaultKind, GraphServer, build_accounts, folder_of
from pipelines.sandbox.mail.graph_server import graph_contact_id, graph_message_id
from pipelines.sandbox.mail.mailbox import iter_messages
from tests.sandbox.mail_clients import graph_client
from tests.sandbox.conftest import MAIL_SEED


@pytest.fixture
def accounts() -> list[Account]:
    """Smaller mailboxes than the Gmail tests: msgraph-sdk spends about 2.5 ms parsing each message."""
    return build_accounts(2, messages=500, contacts=120, seed=MAIL_SEED)


def page_size(size: int) -> RequestConfiguration:
    config = RequestConfiguration()
    config.headers.add("Prefer", f"odata.maxpagesize={size}")
    return config


async def delta_round(builder: Any, link: str | None = None, size: int = 100) -> tuple[list[Any], str]:
    """Every item of one delta round (first request, or from a stored delta link) and the new delta link."""
    items: list[Any] = []
    response = await (builder.with_url(link) if link else builder).get(request_configuration=page_size(size))
    while True:
        items += response.value
        if response.odata_next_link:
            assert response.odata_next_link.startswith("http://127.0.0.1:")
            response = await builder.with_url(response.odata_next_link).get(request_configuration=page_size(size))
            continue
        assert response.odata_delta_link.startswith("http://127.0.0.1:")
        return items, response.odata_delta_link


def inbox(account: Account) -> list[str]:
    return [graph_message_id(account, m.id) for m in iter_messages(account) if folder_of(m) == "inbox"]


def removed(items: list[Any]) -> list[str]:
    return [i.id for i in items if "@removed" in i.additional_data]


def present(items: list[Any]) -> list[str]:
    return [i.id for i in items if "@removed" not in i.additional_data]


def test_inbox_delta_full_round_then_exact_changes(graph: GraphServer, accounts: list[Account]) -> None:
    account = accounts[0]
    client = graph_client(graph, accounts[1])  # any valid token may read /users/{id}, like an app-only token
    builder = client.users.by_user_id(account.user_id).mail_folders.by_mail_folder_id("inbox").messages.delta

    async def scenario() -> None:
        items, link = await delta_round(builder, size=100)
        assert [i.id for i in items] == inbox(account) and len(items) > 300
        assert graph.http_requests["graph.messages.delta"] == -(-len(items) // 100)
        newest = next(m for m in iter_messages(account) if folder_of(m) == "inbox")
        first = items[0]
        assert first.subject == newest.subject and first.internet_message_id == newest.message_id_header
        assert first.from_.email_address.address == newest.sender.email
        assert first.is_read == ("UNREAD" not in newest.labels)
        assert first.body.content == (newest.html or newest.text)

        in_inbox = [m.id for m in iter_messages(account) if folder_of(m) == "inbox"]
        sent = [m.id for m in iter_messages(account) if folder_of(m) == "sentitems"]
        added = [m.id for m in account.add_messages(4)]
        account.delete_messages(in_inbox[:2] + sent[:1] + added[:1])
        moved_out = account.relabel(in_inbox[5:8], remove=["INBOX"])
        read = account.relabel(in_inbox[10:12], remove=["UNREAD"], add=["Label_1"])
        changes, link2 = await delta_round(builder, link, size=3)
        ids = lambda raw: [graph_message_id(account, i) for i in raw]  # noqa: E731
        assert present(changes) == ids(added[1:] + [m.id for m in read])
        assert removed(changes) == ids(in_inbox[:2] + [m.id for m in moved_out])
        assert all(i.additional_data["@removed"] == {"reason": "deleted"} for i in changes if i.id in removed(changes))
        labelled = next(i for i in changes if i.id == graph_message_id(account, read[-1].id))
        assert labelled.categories == ["Clients"] and labelled.is_read is True

        again, _ = await delta_round(builder, link2)
        assert again == []

        archive = client.users.by_user_id(account.user_id).mail_folders.by_mail_folder_id("archive").messages.delta
        archived, _ = await delta_round(archive, size=1000)
        assert set(ids([m.id for m in moved_out])) <= {i.id for i in archived}

    asyncio.run(scenario())


def test_contacts_delta_on_me_with_updates_and_deletes(graph: GraphServer, accounts: list[Account]) -> None:
    account = accounts[0]
    client = graph_client(graph, account)

    async def scenario() -> None:
        items, link = await delta_round(client.me.contacts.delta, size=50)
        assert sorted(i.id for i in items) == sorted(graph_contact_id(account, c) for c in account.contacts)
        assert "/v1.0/me/contacts/delta()" in link
        sample = account.contacts[account.contact_ids()[0]]
        got = next(i for i in items if i.id == graph_contact_id(account, sample.id))
        assert (got.given_name, got.surname, [e.address for e in got.email_addresses]) == (
            sample.given_name, sample.family_name, list(sample.emails))

        existing = account.contact_ids()[:]
        new = account.add_contacts(2)
        changed = account.update_contacts(existing[:3])
        account.delete_contacts(existing[3:5])
        changes, _ = await delta_round(client.me.contacts.delta, link)
        assert present(changes) == [graph_contact_id(account, c.id) for c in new + changed]
        assert removed(changes) == [graph_contact_id(account, c) for c in existing[3:5]]
        updated = next(i for i in changes if i.id == graph_contact_id(account, changed[0].id))
        assert updated.mobile_phone == changed[0].phones[0][1]

    asyncio.run(scenario())


def test_throttling_is_retried_by_the_sdk_retry_handler(graph: GraphServer, accounts: list[Account]) -> None:
    account = accounts[0]
    client = graph_client(graph, account)
    graph.faults.inject(FaultKind.RATE_LIMIT, endpoint="graph.contacts.delta", skip=1, retry_after=1)
    graph.faults.inject(FaultKind.SERVER_ERROR, endpoint="graph.contacts.delta", skip=3, status=503, retry_after=1)

    async def scenario() -> list[Any]:
        return (await delta_round(client.me.contacts.delta, size=50))[0]

    items = asyncio.run(scenario())
    assert sorted(i.id for i in items) == sorted(graph_contact_id(account, c) for c in account.contacts)
    assert graph.faults.fired["rate_limit"] == 1 and graph.faults.fired["server_error"] == 1
    assert graph.http_requests["graph.contacts.delta"] == 3 + 2


def test_expired_delta_link_and_expired_token(graph: GraphServer, accounts: list[Account]) -> None:
    account = accounts[0]
    client = graph_client(graph, account)
    builder = client.me.mail_folders.by_mail_folder_id("sentitems").messages.delta

    async def scenario() -> None:
        items, link = await delta_round(builder, size=500)
        assert len(items) == sum(folder_of(m) == "sentitems" for m in account.messages.values())
        graph.faults.inject(FaultKind.EXPIRED_CURSOR, endpoint="graph.messages.delta")
        with pytest.raises(ODataError) as switched:
            await builder.with_url(link).get()
        assert switched.value.response_status_code == 410 and switched.value.error.code == "syncStateNotFound"
        assert (await delta_round(builder, link))[0] == []

        account.expire_cursors()
        with pytest.raises(ODataError) as expired:
            await builder.with_url(link).get()
        assert expired.value.response_status_code == 410
        again, _ = await delta_round(builder, size=500)  # the documented answer: a new full round
        assert [i.id for i in again] == [i.id for i in items]

        graph.faults.inject(FaultKind.EXPIRED_TOKEN)
        with pytest.raises(ODataError) as unauthorised:
            await builder.get()
        assert unauthorised.value.response_status_code == 401
        assert unauthorised.value.error.code == "InvalidAuthenticationToken"

        with pytest.raises(ODataError) as unknown:
            await client.users.by_user_id("nobody@example.com").contacts.delta.get()
        assert unknown.value.response_status_code == 404

    asyncio.run(scenario())


def test_select_limits_the_properties(graph: GraphServer, accounts: list[Account]) -> None:
    account = accounts[1]
    client = graph_client(graph, account)
    builder = client.me.mail_folders.by_mail_folder_id("inbox").messages.delta
    config = page_size(100)
    config.query_parameters = builder.DeltaRequestBuilderGetQueryParameters(select=["subject", "receivedDateTime"])

    async def scenario() -> None:
        first = await builder.get(request_configuration=config)
        assert first.value[0].subject and first.value[0].received_date_time and first.value[0].body is None
        second = await builder.with_url(first.odata_next_link).get()
        assert len(second.value) == 100 and second.value[0].body is None  # $select and the page size are carried

    asyncio.run(scenario())
