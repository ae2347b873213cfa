"""The mail marts over real syncs of the sandbox mailboxes: counts equal the mailboxes', nothing personal."""

from __future__ import annotations

import datetime as dt
from collections import Counter

import duckdb

from assets.analytics import MODELS, PERSONAL_COLUMNS
from assets.sql_models import build, build_order, readable_personal_data
from pipelines.catalog import DECLARED_TABLES
from pipelines.sandbox.mail import folder_of
from tests.mail.conftest import GMAIL, GMAIL_2, OUTLOOK, PLAN


def _build_all(platform) -> dict[str, dict]:
    with duckdb.connect(str(platform.warehouse)) as con:
        return {m.table: build(con, m, sources=DECLARED_TABLES) for m in build_order(MODELS)}


def test_email_activity_and_contact_lists_match_the_mailboxes(mail) -> None:
    for connection in (GMAIL, OUTLOOK, GMAIL_2):
        mail.sync(connection)
    done = _build_all(mail)
    assert done["staging.stg_events"]["waiting_for"] == ["raw_events.usage_events"]  # no events loaded here

    expected: Counter = Counter()
    contacts: Counter = Counter()
    for workspace, provider, index in PLAN:
        account = mail.accounts[index]
        for message in account.messages.values():
            if provider == "outlook" and folder_of(message) == "archive":
                continue  # Outlook syncs the Inbox and Sent Items
            day = dt.datetime.fromtimestamp(message.internal_date / 1000, dt.timezone.utc).date()
            expected[(day, workspace, provider, "SENT" in message.labels)] += 1
        contacts[(workspace, provider)] += len(account.contacts)
    rows = mail.query("SELECT activity_date, workspace_id, provider, messages_received, messages_sent "
                      "FROM analytics.email_activity")
    held: Counter = Counter()
    for day, workspace, provider, received, sent in rows:
        held[(day, workspace, provider, False)] += received
        held[(day, workspace, provider, True)] += sent
    assert +held == expected
    today = dt.datetime.now(dt.timezone.utc).date()
    assert {(w, p): n for d, w, p, n in mail.query(
        "SELECT snapshot_date, workspace_id, provider, contacts FROM analytics.contact_lists_daily")
            if d == today} == dict(contacts)

    # A contact deleted at the provider shows as a loss on the next day's count.
    account = mail.accounts[0]
    account.delete_contacts(list(account.contacts)[:3])
    mail.sync(GMAIL)
    with duckdb.connect(str(mail.warehouse)) as con:  # yesterday's count, as an earlier day's build left it
        con.execute("UPDATE analytics.contact_lists_daily SET snapshot_date = snapshot_date - 1")
    _build_all(mail)
    growth = mail.query("SELECT contacts, change FROM analytics.contact_growth WHERE workspace_id = 'ws_0001' "
                        "AND provider = 'gmail' ORDER BY snapshot_date")
    assert growth == [(40, None), (37, -3)]

    with duckdb.connect(str(mail.warehouse), read_only=True) as con:
        for name in ("analytics.email_activity", "analytics.contact_lists_daily", "analytics.contact_growth"):
            assert readable_personal_data(con, MODELS[name], PERSONAL_COLUMNS) == {}
